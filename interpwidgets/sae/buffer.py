"""A shuffling activation buffer: mixes activations from many contexts before cutting batches.

Consecutive tokens of one context are strongly correlated; training on them in order biases each
step. The buffer keeps up to `capacity` rows, shuffles, hands out batches until half remain, then
refills from the source, so every batch draws on many contexts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch


def shuffled_batches(
    chunks: Iterable[torch.Tensor], batch_size: int, capacity: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Batches `[batch_size, width]` drawn from `chunks` (each `[n_i, width]`) after mixing in a buffer.

    When the source ends, the remaining rows are shuffled and served; a final partial batch is dropped.
    """
    if capacity < 2 * batch_size:
        raise ValueError(f"buffer capacity ({capacity}) must be at least twice the batch size ({batch_size}).")
    store: torch.Tensor | None = None  # rows left over from the last refill
    pending: list[torch.Tensor] = []
    n_pending = 0
    for chunk in chunks:
        pending.append(chunk)
        n_pending += len(chunk)
        held = n_pending + (len(store) if store is not None else 0)
        if held < capacity:
            continue
        store = torch.cat(([store] if store is not None else []) + pending)
        pending, n_pending = [], 0
        store = store[torch.randperm(len(store), generator=generator)]
        n_batches = (len(store) - capacity // 2) // batch_size
        for i in range(n_batches):
            yield store[i * batch_size:(i + 1) * batch_size]
        store = store[n_batches * batch_size:]
    if store is not None or pending:
        store = torch.cat(([store] if store is not None else []) + pending)
        store = store[torch.randperm(len(store), generator=generator)]
        for i in range(len(store) // batch_size):
            yield store[i * batch_size:(i + 1) * batch_size]
