"""Generated training corpus of the teaching model: IOI, induction, brackets and filler text.

Each text generator takes a `random.Random` and returns one document as text; `token_induction_ids` returns
token ids (random tokens of the whole vocabulary, repeated: text would not round-trip to the same tokens).
`MIX` gives the proportions of the kinds. `split="train"` draws IOI names and templates from the training sets
only; `split="held_out"` from the held-out sets (used by evaluation, never by training).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from interpwidgets.data import vocab

Split = Literal["train", "held_out"]
LONGEST_REPEAT = 127  # longest repeated half of a token-induction document


@dataclass(frozen=True)
class IOISentence:
    """One IOI prompt. `text` ends before the answer; `io` is the answer, `s` the repeated subject."""

    text: str
    io: str
    s: str
    template: str
    fields: dict


def ioi_names(split: Split) -> tuple[str, ...]:
    return vocab.TRAIN_NAMES if split == "train" else vocab.HELD_OUT_NAMES


def ioi_templates(split: Split) -> tuple[str, ...]:
    return vocab.TRAIN_TEMPLATES if split == "train" else vocab.HELD_OUT_TEMPLATES


def ioi_sentence(rng: random.Random, split: Split = "train", template: str | None = None,
                 stand_ins: float = 0.0) -> IOISentence:
    """An IOI prompt in ABBA or BABA order ("When Mary and John ..., John gave a drink to" -> " Mary").

    With probability `stand_ins` the two "names" are other words ("When lamp and fox ..., fox gave a drink to"
    -> " lamp"): training on those teaches a copy of whichever token was the indirect object, not of the
    training names, which is what carries the circuit over to held-out names."""
    io, s = rng.sample(STAND_IN_WORDS if rng.random() < stand_ins else ioi_names(split), 2)
    template = template or rng.choice(ioi_templates(split))
    a, b = (io, s) if rng.random() < 0.5 else (s, io)
    fields = dict(A=a, B=b, S=s, PLACE=rng.choice(vocab.PLACES), OBJECT=rng.choice(vocab.OBJECTS))
    return IOISentence(template.format(**fields), io, s, template, fields)


def ioi_document(rng: random.Random, split: Split = "train") -> str:
    sentence = ioi_sentence(rng, split, stand_ins=STAND_IN_RATE if split == "train" else 0.0)
    return f"{sentence.text} {sentence.io}."


def induction_sequence(rng: random.Random, length: int, words: tuple[str, ...] | None = None) -> list[str]:
    """`length` random words, repeated once: the second half is predictable only by copying."""
    words = words or INDUCTION_WORDS
    half = [rng.choice(words) for _ in range(length)]
    return half + half


def induction_document(rng: random.Random) -> str:
    return " " + " ".join(induction_sequence(rng, rng.randint(4, 24)))


def repeat_length(rng: random.Random, longest: int = LONGEST_REPEAT) -> int:
    """Length of a repeated half, log-uniform over 4 .. `longest`: short repeats stay common, and the longest
    put the copy as far back as the context reaches (2 * 127 tokens + BOS fill a 256-token row)."""
    return round(math.exp(rng.uniform(math.log(4), math.log(longest))))


def token_induction_ids(rng: random.Random, n_vocab: int) -> list[int]:
    """Random token ids from the whole vocabulary but BOS (id 0), repeated once: every token form must be copied,
    from any distance up to the context."""
    half = [rng.randrange(1, n_vocab) for _ in range(repeat_length(rng))]
    return half + half


def bracket_sequence(rng: random.Random, n_pairs: int, max_depth: int = 6) -> list[str]:
    """A balanced sequence of `n_pairs` bracket pairs over ( ) [ ] { } with random nesting."""
    out: list[str] = []
    stack: list[str] = []
    opened = 0
    while opened < n_pairs or stack:
        can_open = opened < n_pairs and len(stack) < max_depth
        if can_open and (not stack or rng.random() < 0.55):
            opener, closer = rng.choice(vocab.BRACKET_PAIRS)
            out.append(opener)
            stack.append(closer)
            opened += 1
        else:
            out.append(stack.pop())
    return out


def bracket_document(rng: random.Random) -> str:
    return " " + " ".join(bracket_sequence(rng, rng.randint(2, 12)))


def filler_sentence(rng: random.Random) -> str:
    """A sentence from a small grammar; names come from all names, held-out ones included."""

    def subject(made_up: bool = True) -> str:
        if made_up and rng.random() < MADE_UP_RATE:
            return made_up_word(rng)
        if rng.random() < 0.5:
            return rng.choice(vocab.NAMES)
        return f"the {rng.choice(vocab.ADJECTIVES)} {rng.choice(vocab.ANIMALS)}"

    kind = rng.random()
    if kind < 0.4:
        sentence = f"{subject()} {rng.choice(vocab.VERBS)} {subject()} in the {rng.choice(vocab.PLACES)}"
    elif kind < 0.7:
        sentence = f"{subject()} {rng.choice(vocab.INTRANSITIVE)} near the {rng.choice(vocab.PLACES)}"
    else:
        sentence = f"{subject()} {rng.choice(vocab.GIVE_VERBS)} the {rng.choice(vocab.OBJECTS)} to {subject(made_up=False)}"
    sentence = sentence[0].upper() + sentence[1:]
    return sentence + rng.choice("..!?")


def made_up_word(rng: random.Random) -> str:
    """A capitalised string of 3-9 random letters: outside the vocabulary, so spelled with byte tokens."""
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))).capitalize()


def filler_document(rng: random.Random) -> str:
    return " ".join(filler_sentence(rng) for _ in range(rng.randint(1, 4)))


INDUCTION_WORDS: tuple[str, ...] = tuple(
    w for w in vocab.all_words() if w not in vocab.PUNCTUATION and w not in sum(map(list, vocab.BRACKET_PAIRS), [])
)

STAND_IN_WORDS: tuple[str, ...] = tuple(w for w in INDUCTION_WORDS if w not in vocab.NAMES)
STAND_IN_RATE = 0.25  # share of IOI training sentences whose names are other words
MADE_UP_RATE = 0.08  # share of filler subjects that are made-up words (never the recipient after "to", the slot
# IOI predicts: a model that expects a made-up word there puts its mass on a first byte instead of the name)

# proportions of documents; token-induction documents are the longest (71 tokens on average), so 0.10 of the
# documents is about 0.3 of the tokens
MIX: dict[str, float] = {"ioi": 0.40, "induction": 0.12, "token_induction": 0.10, "brackets": 0.10, "filler": 0.28}
TOKEN_KINDS = ("token_induction",)  # kinds generated as token ids (`token_induction_ids`), not text
TEXT_MIX: dict[str, float] = {kind: p for kind, p in MIX.items() if kind not in TOKEN_KINDS}
_GENERATORS = {
    "ioi": ioi_document,
    "induction": induction_document,
    "brackets": bracket_document,
    "filler": filler_document,
}


def random_kind(rng: random.Random, mix: dict[str, float] | None = None) -> str:
    """A document kind drawn from `mix` (kind -> probability; default `MIX`)."""
    mix = mix or MIX
    return rng.choices(list(mix), list(mix.values()))[0]


def text_document(rng: random.Random, kind: str) -> str:
    """One document of a text kind (every kind of `MIX` but `TOKEN_KINDS`)."""
    return _GENERATORS[kind](rng)


def random_document(rng: random.Random, mix: dict[str, float] | None = None) -> str:
    """One text document whose kind is drawn from `mix` (default `TEXT_MIX`: `MIX` without its token kinds)."""
    return text_document(rng, random_kind(rng, mix or TEXT_MIX))


def documents(seed: int, mix: dict[str, float] | None = None) -> Iterator[str]:
    """An endless, seeded stream of text documents."""
    rng = random.Random(seed)
    while True:
        yield random_document(rng, mix)
