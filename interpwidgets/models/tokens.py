"""Prompts as token ids and token ids as display strings, for models with or without a tokenizer (one place for
engine and widgets).

A model loaded without a tokenizer (`model.tokenizer is None`) reads token ids only: it takes its prompts as ids,
and its tokens show as "#42".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from interpwidgets.models.device import device_of


def has_tokenizer(model: Any) -> bool:
    return getattr(model, "tokenizer", None) is not None


def require_tokenizer(model: Any, what: str, fix: str) -> None:
    """A ValueError saying that `what` needs a tokenizer, and `fix` (what to pass instead), when the model has none."""
    if not has_tokenizer(model):
        raise ValueError(f"this model has no tokenizer (it reads token ids only), so {what} cannot be tokenized: {fix}.")


def prompt_tokens(model: Any, prompt: str | torch.Tensor | Sequence[int], *, too_long: str = "") -> torch.Tensor:
    """Token ids `[1, n]` (on the model's device) of a prompt: text (BOS prepended), or ids `[n]` / `[1, n]`.

    `too_long` is appended to the error for a prompt longer than the model's context.
    """
    if isinstance(prompt, str):
        if not prompt:
            raise ValueError("the prompt is empty.")
        require_tokenizer(model, "a text prompt", "pass token ids instead (a [seq] or [1, seq] tensor, or a list of ints)")
        tokens = model.to_tokens(prompt, truncate=False)
    else:
        tokens = torch.as_tensor(prompt)
        if tokens.is_floating_point() or tokens.ndim not in (1, 2) or (tokens.ndim == 2 and tokens.shape[0] != 1):
            raise ValueError(f"token ids must be integers of shape [n] or [1, n], got {tokens.dtype} {tuple(tokens.shape)}.")
        tokens = tokens.reshape(1, -1).long()
    n_ctx, n = model.cfg.n_ctx, tokens.shape[1]
    if not 0 < n <= n_ctx:
        raise ValueError(f"the prompt has {n} tokens; the model reads 1 to {n_ctx}.{too_long and ' ' + too_long}")
    if int(tokens.min()) < 0 or int(tokens.max()) >= model.cfg.d_vocab:
        raise ValueError(f"token ids must lie in [0, {model.cfg.d_vocab - 1}].")
    return tokens.to(device_of(model))


def token_strings(model: Any, ids: Iterable[int]) -> list[str]:
    """Each token id decoded on its own, or "#id" for a model without a tokenizer."""
    if not has_tokenizer(model):
        return [f"#{int(i)}" for i in ids]
    return [model.tokenizer.decode([int(i)]) for i in ids]


def token_text(model: Any, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
    """Token ids decoded as one text, or their "#id" strings joined by spaces for a model without a tokenizer."""
    if not has_tokenizer(model):
        return " ".join(token_strings(model, ids))
    return model.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)


def top_tokens(model: Any, logits, *, k: int = 5) -> list[tuple[str, float]]:
    """The `k` most probable next tokens of one position's logits `[vocab]`, as (token string, probability)."""
    probs = logits.float().softmax(-1)
    values, ids = probs.topk(min(k, probs.numel()))
    return list(zip(token_strings(model, ids.tolist()), values.tolist()))
