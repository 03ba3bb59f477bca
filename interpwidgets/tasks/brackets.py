"""Bracket matching over ( ) [ ] { }: predict the closer of the innermost open bracket.

Clean: BOS and a bracket prefix whose next token is a closer -> that closer. Corrupt: the same prefix
with the innermost open bracket changed to another kind (answer = clean closer, wrong = the new one's).
"""

from __future__ import annotations

import random

import torch

from interpwidgets.tasks.base import Task, check_context, check_n, single_token_id
from interpwidgets.data import corpus, vocab

CLOSER = dict(vocab.BRACKET_PAIRS)


def open_stack(sequence: list[str]) -> list[int]:
    """Positions of the brackets still open after `sequence`, innermost last."""
    stack: list[int] = []
    for i, token in enumerate(sequence):
        if token in CLOSER:
            stack.append(i)
        else:
            stack.pop()
    return stack


def brackets(model, *, n: int = 64, seed: int = 0, length: int = 12) -> Task:
    """`n` prompts of `length` brackets after BOS, each ending with at least one bracket open."""
    check_n(n)
    check_context(model, length + 1)
    tok = model.tokenizer
    ids = {b: single_token_id(tok, " " + b) for pair in vocab.BRACKET_PAIRS for b in pair}
    rng = random.Random(seed)
    clean, corrupt, answers, wrongs = [], [], [], []
    while len(clean) < n:
        full = corpus.bracket_sequence(rng, n_pairs=length)
        prefix = full[:length]
        stack = open_stack(prefix)
        if not stack or full[length] in CLOSER:  # keep prefixes whose true next token is a closer
            continue
        inner = stack[-1]
        new_opener = rng.choice([o for o in CLOSER if o != prefix[inner]])
        changed = prefix[:inner] + [new_opener] + prefix[inner + 1:]
        clean.append([tok.bos_token_id] + [ids[b] for b in prefix])
        corrupt.append([tok.bos_token_id] + [ids[b] for b in changed])
        answers.append(ids[CLOSER[prefix[inner]]])
        wrongs.append(ids[CLOSER[new_opener]])
    decode = lambda rows: [tok.decode(r[1:]) for r in rows]  # noqa: E731
    return Task(
        "brackets", torch.tensor(clean), torch.tensor(corrupt), torch.tensor(answers), torch.tensor(wrongs),
        decode(clean), decode(corrupt),
    )
