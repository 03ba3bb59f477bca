"""Induction: a random token sequence repeated; the model must copy what followed last time.

The tokens are leading-space corpus words (`tokens="words"`, readable) or drawn from the whole vocabulary
(`tokens="vocabulary"`: every token form, specials excepted). Clean: BOS r1 .. rL r1 .. r(L-1) -> rL. Corrupt: a different first half s1 .. sL in which s(L-1) = r(L-1)
and sL = w, so copying predicts w instead (answer = rL, wrong = w).
"""

from __future__ import annotations

import random
from typing import Literal

import torch

from interpwidgets.tasks.base import Task, check_context, check_n, single_token_id
from interpwidgets.data import corpus


def induction(model, *, n: int = 64, seed: int = 0, length: int = 12,
              tokens: Literal["words", "vocabulary"] = "words") -> Task:
    """`n` prompts of 2 * `length` tokens after BOS (see module docstring)."""
    check_n(n)
    if length < 3:
        raise ValueError(f"length must be at least 3 to leave room for a repeated prefix, got {length}.")
    if tokens not in ("words", "vocabulary"):
        raise ValueError(f"tokens must be 'words' or 'vocabulary', got {tokens!r}.")
    check_context(model, 2 * length)
    tok = model.tokenizer
    ids = _word_ids(tok) if tokens == "words" else _vocabulary_ids(tok)
    if len(ids) < 2 * length + 2:
        raise ValueError(f"The tokenizer has only {len(ids)} single-token induction words; need {2 * length + 2}.")
    words = sorted(ids)
    rng = random.Random(seed)
    clean, corrupt, answers, wrongs = [], [], [], []
    bos = tok.bos_token_id
    for _ in range(n):
        first = rng.sample(words, length)  # distinct words: the copy target is unambiguous
        taken = set(first)
        others = rng.sample([w for w in words if w not in taken], length)
        other_first = others[: length - 2] + [first[-2], others[-1]]
        second = first[:-1]
        clean.append([bos] + [ids[w] for w in first + second])
        corrupt.append([bos] + [ids[w] for w in other_first + second])
        answers.append(ids[first[-1]])
        wrongs.append(ids[others[-1]])
    decode = lambda rows: [tok.decode(r[1:]) for r in rows]  # noqa: E731
    return Task(
        "induction", torch.tensor(clean), torch.tensor(corrupt), torch.tensor(answers), torch.tensor(wrongs),
        decode(clean), decode(corrupt),
    )


def _word_ids(tok) -> dict[str, int]:
    ids = {}
    for word in corpus.INDUCTION_WORDS:
        try:
            ids[word] = single_token_id(tok, " " + word)
        except ValueError:
            pass
    return ids


def _vocabulary_ids(tok) -> dict[int, int]:
    """Every token id but the specials (keyed by itself)."""
    specials = set(tok.all_special_ids)
    return {i: i for i in range(len(tok)) if i not in specials}
