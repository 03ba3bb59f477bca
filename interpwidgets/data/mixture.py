"""Token batches of the training mixture: the teaching corpus's documents, BOS-separated and packed into rows.

Batch `step` of `seed` is a function of (seed, step) alone, so a training run resumed from a checkpoint sees
the same data as an uninterrupted one, and the SAE corpus (another seed) is as reproducible.
"""

from __future__ import annotations

import random

import torch

from interpwidgets.data import corpus


def document_ids(tokenizer, rng: random.Random, n: int) -> list[list[int]]:
    """`n` documents of `corpus.MIX` as token ids (text kinds tokenized together)."""
    kinds = [corpus.random_kind(rng) for _ in range(n)]
    docs: list = [corpus.token_induction_ids(rng, len(tokenizer)) if kind in corpus.TOKEN_KINDS
                  else corpus.text_document(rng, kind) for kind in kinds]
    texts = [i for i, doc in enumerate(docs) if isinstance(doc, str)]
    for i, ids in zip(texts, tokenizer([docs[i] for i in texts], add_special_tokens=False)["input_ids"]):
        docs[i] = ids
    return docs


def training_batch(tokenizer, seed: int, step: int, batch: int, seq_len: int) -> torch.Tensor:
    """[batch, seq_len] ids: rows of BOS-separated documents, each row starting with BOS."""
    rng = random.Random(seed * 1_000_003 + step)
    bos = tokenizer.bos_token_id
    rows = []
    for _ in range(batch):
        row: list[int] = []
        while len(row) < seq_len:
            for ids in document_ids(tokenizer, rng, 8):
                row += [bos] + ids
        rows.append(row[:seq_len])
    return torch.tensor(rows)
