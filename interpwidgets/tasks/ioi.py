"""Indirect object identification (Wang et al. 2022) with the ABC corruption.

Clean: "When Mary and John went to the store, John gave a drink to" -> " Mary" (answer = IO, wrong = S).
Corrupt: the same sentence with the three names replaced by three other, distinct names ("ABC"), so
no name is repeated and the IO/S information is gone.
"""

from __future__ import annotations

import random
from collections import defaultdict

import torch

from interpwidgets.tasks.base import Task, check_n, encode_prompts, single_token_id
from interpwidgets.data import corpus, vocab


def _usable(tokenizer, words, needed: int, what: str) -> list[str]:
    ok = []
    for word in words:
        try:
            single_token_id(tokenizer, " " + word)
            ok.append(word)
        except ValueError:
            pass
    if len(ok) < needed:
        raise ValueError(
            f"The model's tokenizer has only {len(ok)} of the {len(words)} {what} as single tokens; the IOI task "
            f"needs at least {needed}. Use a model whose tokenizer has single-token names (e.g. the teaching model)."
        )
    return ok


def ioi(model, *, n: int = 64, seed: int = 0, split: corpus.Split = "held_out") -> Task:
    """`n` IOI prompts (ABBA and BABA) from one same-length group of the split's templates."""
    check_n(n)
    tok = model.tokenizer
    rng = random.Random(seed)
    names = _usable(tok, corpus.ioi_names(split), 6, f"{split} names")
    places = _usable(tok, vocab.PLACES, 1, "places")
    objects = _usable(tok, vocab.OBJECTS, 1, "objects")
    # group templates by token length so every prompt in the batch has the same length
    by_length: dict[int, list[str]] = defaultdict(list)
    probe = dict(A=names[0], B=names[1], S=names[0], PLACE=places[0], OBJECT=objects[0])
    for template in corpus.ioi_templates(split):
        by_length[len(tok.encode(template.format(**probe), add_special_tokens=False))].append(template)
    templates = max(by_length.values(), key=len)

    clean, corrupt, answers, wrongs = [], [], [], []
    for _ in range(n):
        template = rng.choice(templates)
        io, s, c1, c2, c3 = rng.sample(names, 5)
        a, b = (io, s) if rng.random() < 0.5 else (s, io)
        place, obj = rng.choice(places), rng.choice(objects)
        clean.append(template.format(A=a, B=b, S=s, PLACE=place, OBJECT=obj))
        # ABC: the opening pair becomes (c1, c2) and the subject c3, keeping the token count
        corrupt.append(template.format(A=c1, B=c2, S=c3, PLACE=place, OBJECT=obj))
        answers.append(single_token_id(tok, " " + io))
        wrongs.append(single_token_id(tok, " " + s))
    return Task(
        "ioi", encode_prompts(model, clean), encode_prompts(model, corrupt),
        torch.tensor(answers), torch.tensor(wrongs), clean, corrupt,
    )
