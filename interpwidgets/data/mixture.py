"""Token batches of the training mixture: the teaching corpus's documents, BOS-separated and packed into rows.

Batch `step` of `seed` is a function of (seed, step) alone, so a training run resumed from a checkpoint sees
the same data as an uninterrupted one, and the SAE corpus (another seed) is as reproducible.
"""

from __future__ import annotations

import random

import torch

from interpwidgets.data import corpus


def training_batch(tokenizer, seed: int, step: int, batch: int, seq_len: int) -> torch.Tensor:
    """[batch, seq_len] ids: rows of BOS-separated documents, each row starting with BOS."""
    rng = random.Random(seed * 1_000_003 + step)
    bos = tokenizer.bos_token_id
    rows = []
    for _ in range(batch):
        row: list[int] = []
        while len(row) < seq_len:
            docs = [corpus.random_document(rng) for _ in range(8)]
            for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]:
                row += [bos] + ids
        rows.append(row[:seq_len])
    return torch.tensor(rows)
