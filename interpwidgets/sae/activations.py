"""Token sources and model activations at hooks, for training and evaluating dictionaries."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator

import torch
from tqdm.auto import tqdm

from interpwidgets.data.mixture import training_batch
from interpwidgets.sae.sets import hook_layer

CORPUS_SEED = 101  # SAE data differs from the teaching model's training stream (seed 0)
DEFAULT_CONTEXT = 128  # row length of the corpus and of packed strings unless the model's context is shorter


def context_length(model, context_size: int | None) -> int:
    """The row length for the corpus and packed strings: `context_size`, or (None) 128 cut to the model's context.

    A too-long `context_size` given explicitly is refused (positions past `n_ctx` have no embedding);
    the default is shortened to `n_ctx` with a warning.
    """
    n_ctx = model.cfg.n_ctx
    if context_size is None:
        if n_ctx < DEFAULT_CONTEXT:
            warnings.warn(f"The model reads at most n_ctx={n_ctx} tokens, fewer than the default context_size="
                          f"{DEFAULT_CONTEXT}: rows of {n_ctx} tokens are used. Pass context_size= to choose.", stacklevel=4)
        return min(DEFAULT_CONTEXT, n_ctx)
    if isinstance(context_size, bool) or not isinstance(context_size, int) or context_size < 2:
        raise ValueError(f"context_size must be an integer of at least 2 tokens, got {context_size!r}.")
    if context_size > n_ctx:
        raise ValueError(f"context_size={context_size} is longer than the model's context (n_ctx={n_ctx}): "
                         f"pass context_size={n_ctx} or less.")
    return context_size


def _require_tokenizer(model, what: str) -> None:
    if getattr(model, "tokenizer", None) is None:
        raise ValueError(f"This model has no tokenizer (it reads token ids only), so {what} cannot be tokenized: "
                         "pass tokens= as an integer tensor [batch, seq].")


def token_rows(model, tokens, context_size: int | None) -> torch.Tensor | None:
    """Token rows `[n, seq]` from a token tensor or a list of strings (None for the corpus).

    Strings are packed: each document after a BOS, concatenated, cut into rows of `context_length`.
    """
    if tokens is None or (isinstance(tokens, str) and tokens == "corpus"):
        return None
    if isinstance(tokens, torch.Tensor):
        if tokens.ndim != 2 or tokens.dtype not in (torch.long, torch.int, torch.int32):
            raise ValueError(f"tokens must be an integer tensor [batch, seq], got {tuple(tokens.shape)} {tokens.dtype}.")
        if tokens.shape[1] > model.cfg.n_ctx:
            raise ValueError(f"tokens has rows of {tokens.shape[1]} tokens; the model reads at most n_ctx="
                             f"{model.cfg.n_ctx}: cut or split them (e.g. tokens[:, :{model.cfg.n_ctx}]).")
        return tokens.long()
    if isinstance(tokens, (list, tuple)) and tokens and all(isinstance(t, str) for t in tokens):
        _require_tokenizer(model, "a list of strings")
        bos = model.tokenizer.bos_token_id
        flat: list[int] = []
        for ids in model.tokenizer(list(tokens), add_special_tokens=False)["input_ids"]:
            flat += [bos, *ids]
        width = min(context_length(model, context_size), len(flat))
        n = len(flat) // width
        return torch.tensor(flat[: n * width]).view(n, width)
    raise TypeError("tokens must be None/'corpus' (the teaching corpus), a token tensor [batch, seq], or a list of strings.")


def token_source(model, tokens, context_size: int | None) -> tuple[torch.Tensor | None, int]:
    """`(rows, context)`: the rows of `tokens` (see `token_rows`; None for the corpus) and their length."""
    context = None if isinstance(tokens, torch.Tensor) else context_length(model, context_size)
    rows = token_rows(model, tokens, context)
    return rows, (context if rows is None else rows.shape[1])


def token_batches(model, rows: torch.Tensor | None, batch: int, context_size: int | None, seed: int,
                  start: int = 0) -> Iterator[torch.Tensor]:
    """Endless `[batch, seq]` token batches from `rows` (cycled) or, when None, the teaching corpus (batch i of
    seed, rows of `context_length(model, context_size)`)."""
    if rows is not None:
        return _cycled(rows, batch, start)
    _require_tokenizer(model, "the teaching corpus (tokens=None)")
    return _corpus_batches(model.tokenizer, batch, context_length(model, context_size), seed, start)


def _corpus_batches(tokenizer, batch: int, context: int, seed: int, start: int) -> Iterator[torch.Tensor]:
    for step in itertools.count(start):
        yield training_batch(tokenizer, seed, step, batch, context)


def _cycled(rows: torch.Tensor, batch: int, start: int) -> Iterator[torch.Tensor]:
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
    model, hooks: list[str], n_tokens: int, *, batch: int = 64, context_size: int | None = None, seed: int = CORPUS_SEED,
    dtype: torch.dtype = torch.float16, progress: bool = True,
) -> dict[str, torch.Tensor]:
    """`{hook: [n_tokens, width]}` activations over the teaching corpus (per-head hooks flattened), in `dtype`.

    One forward pass per batch serves every hook, so dictionaries at many hooks share the cost.
    """
    context = context_length(model, context_size)
    per_batch = batch * context
    n_batches = -(-n_tokens // per_batch)
    out: dict[str, torch.Tensor] = {}
    batches = token_batches(model, None, batch, context, seed)
    for i in tqdm(range(n_batches), desc="caching activations", disable=not progress):
        acts = hook_activations(model, next(batches), hooks)
        for hook, a in acts.items():
            flat = a.reshape(per_batch, -1)
            if hook not in out:
                out[hook] = torch.empty(n_batches * per_batch, flat.shape[-1], dtype=dtype)
            out[hook][i * per_batch:(i + 1) * per_batch] = flat.to(dtype).cpu()
    return {hook: a[:n_tokens] for hook, a in out.items()}
