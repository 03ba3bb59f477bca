"""Token sources and model activations at hooks, for training and evaluating dictionaries."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from tqdm.auto import tqdm

from interpwidgets.sae.sets import hook_layer

CORPUS_SEED = 101  # SAE data differs from the teaching model's training stream (seed 0)


def token_rows(model, tokens, context_size: int) -> torch.Tensor | None:
    """Token rows `[n, seq]` from a token tensor or a list of strings (None for the corpus).

    Strings are packed: each document after a BOS, concatenated, cut into rows of `context_size`.
    """
    if tokens is None or (isinstance(tokens, str) and tokens == "corpus"):
        return None
    if isinstance(tokens, torch.Tensor):
        if tokens.ndim != 2 or tokens.dtype not in (torch.long, torch.int, torch.int32):
            raise ValueError(f"tokens must be an integer tensor [batch, seq], got {tuple(tokens.shape)} {tokens.dtype}.")
        return tokens.long()
    if isinstance(tokens, (list, tuple)) and tokens and all(isinstance(t, str) for t in tokens):
        bos = model.tokenizer.bos_token_id
        flat: list[int] = []
        for ids in model.tokenizer(list(tokens), add_special_tokens=False)["input_ids"]:
            flat += [bos, *ids]
        width = min(context_size, len(flat))
        n = len(flat) // width
        return torch.tensor(flat[: n * width]).view(n, width)
    raise TypeError("tokens must be None/'corpus' (the teaching corpus), a token tensor [batch, seq], or a list of strings.")


def token_batches(model, rows: torch.Tensor | None, batch: int, context_size: int, seed: int, start: int = 0) -> Iterator[torch.Tensor]:
    """Endless `[batch, seq]` token batches from `rows` (cycled) or, when None, the teaching corpus (batch i of seed)."""
    if rows is None:
        from interpwidgets.zoo.train import training_batch

        for step in itertools.count(start):
            yield training_batch(model.tokenizer, seed, step, batch, context_size)
    n = max(1, -(-len(rows) // batch))
    for i in itertools.count(start):
        yield rows[(i % n) * batch:((i % n) + 1) * batch]


@torch.no_grad()
def hook_activations(model, tokens: torch.Tensor, hooks: list[str]) -> dict[str, torch.Tensor]:
    """`{hook: activations [batch, seq, ...]}` for `tokens [batch, seq]`, stopping after the last block needed."""
    layers = [hook_layer(h) if h.startswith("blocks.") else None for h in hooks]
    stop = None if None in layers else max(layers) + 1
    if stop is not None and stop >= model.cfg.n_layers:
        stop = None
    _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=list(hooks), stop_at_layer=stop)
    return {h: cache[h] for h in hooks}


@torch.no_grad()
def cache_activations(
    model, hooks: list[str], n_tokens: int, *, batch: int = 64, context_size: int = 128, seed: int = CORPUS_SEED,
    dtype: torch.dtype = torch.float16, progress: bool = True,
) -> dict[str, torch.Tensor]:
    """`{hook: [n_tokens, width]}` activations over the teaching corpus (per-head hooks flattened), in `dtype`.

    One forward pass per batch serves every hook, so dictionaries at many hooks share the cost.
    """
    per_batch = batch * context_size
    n_batches = -(-n_tokens // per_batch)
    out: dict[str, torch.Tensor] = {}
    batches = token_batches(model, None, batch, context_size, seed)
    for i in tqdm(range(n_batches), desc="caching activations", disable=not progress):
        acts = hook_activations(model, next(batches), hooks)
        for hook, a in acts.items():
            flat = a.reshape(per_batch, -1)
            if hook not in out:
                out[hook] = torch.empty(n_batches * per_batch, flat.shape[-1], dtype=dtype)
            out[hook][i * per_batch:(i + 1) * per_batch] = flat.to(dtype).cpu()
    return {hook: a[:n_tokens] for hook, a in out.items()}
