"""Generated training corpus of the teaching model: IOI, induction, brackets and filler text.

Each generator takes a `random.Random` and returns one document as text. `documents` mixes them in
fixed proportions. `split="train"` draws IOI names and templates from the training sets only;
`split="held_out"` from the held-out sets (used by evaluation, never by training).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from interpwidgets.data import vocab

Split = Literal["train", "held_out"]


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


def ioi_sentence(rng: random.Random, split: Split = "train", template: str | None = None) -> IOISentence:
    """An IOI prompt in ABBA or BABA order ("When Mary and John ..., John gave a drink to" -> " Mary")."""
    io, s = rng.sample(ioi_names(split), 2)
    template = template or rng.choice(ioi_templates(split))
    a, b = (io, s) if rng.random() < 0.5 else (s, io)
    fields = dict(A=a, B=b, S=s, PLACE=rng.choice(vocab.PLACES), OBJECT=rng.choice(vocab.OBJECTS))
    return IOISentence(template.format(**fields), io, s, template, fields)


def ioi_document(rng: random.Random, split: Split = "train") -> str:
    sentence = ioi_sentence(rng, split)
    return f"{sentence.text} {sentence.io}."


def induction_sequence(rng: random.Random, length: int, words: tuple[str, ...] | None = None) -> list[str]:
    """`length` random words, repeated once: the second half is predictable only by copying."""
    words = words or INDUCTION_WORDS
    half = [rng.choice(words) for _ in range(length)]
    return half + half


def induction_document(rng: random.Random) -> str:
    return " " + " ".join(induction_sequence(rng, rng.randint(4, 24)))


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

    def subject() -> str:
        if rng.random() < 0.5:
            return rng.choice(vocab.NAMES)
        return f"the {rng.choice(vocab.ADJECTIVES)} {rng.choice(vocab.ANIMALS)}"

    kind = rng.random()
    if kind < 0.4:
        sentence = f"{subject()} {rng.choice(vocab.VERBS)} {subject()} in the {rng.choice(vocab.PLACES)}"
    elif kind < 0.7:
        sentence = f"{subject()} {rng.choice(vocab.INTRANSITIVE)} near the {rng.choice(vocab.PLACES)}"
    else:
        sentence = f"{subject()} {rng.choice(vocab.GIVE_VERBS)} the {rng.choice(vocab.OBJECTS)} to {subject()}"
    sentence = sentence[0].upper() + sentence[1:]
    return sentence + rng.choice("..!?")


def filler_document(rng: random.Random) -> str:
    return " ".join(filler_sentence(rng) for _ in range(rng.randint(1, 4)))


INDUCTION_WORDS: tuple[str, ...] = tuple(
    w for w in vocab.all_words() if w not in vocab.PUNCTUATION and w not in sum(map(list, vocab.BRACKET_PAIRS), [])
)

MIX: dict[str, float] = {"ioi": 0.35, "induction": 0.30, "brackets": 0.12, "filler": 0.23}
_GENERATORS = {
    "ioi": ioi_document,
    "induction": induction_document,
    "brackets": bracket_document,
    "filler": filler_document,
}


def random_document(rng: random.Random, mix: dict[str, float] | None = None) -> str:
    """One training document whose kind is drawn from `mix` (kind -> probability)."""
    mix = mix or MIX
    return _GENERATORS[rng.choices(list(mix), list(mix.values()))[0]](rng)


def documents(seed: int, mix: dict[str, float] | None = None) -> Iterator[str]:
    """An endless, seeded stream of training documents."""
    rng = random.Random(seed)
    while True:
        yield random_document(rng, mix)
