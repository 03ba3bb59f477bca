"""Prompts as token ids and token ids as the strings the widgets show, for models with or without a tokenizer.

A model loaded without a tokenizer (`model.tokenizer is None`) reads token ids only: every widget then
takes its prompt (and corpus) as ids and shows each token as its id, "#42".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from interpwidgets.models.tokens import has_tokenizer, token_strings, token_text

__all__ = ["has_tokenizer", "prompt_tokens", "require_tokenizer", "token_strings", "token_text"]


def require_tokenizer(model: Any, what: str, fix: str) -> None:
    """A ValueError saying that `what` needs a tokenizer, and `fix` (what to pass instead), when the model has none."""
    if not has_tokenizer(model):
        raise ValueError(f"this model has no tokenizer (it reads token ids only), so {what} cannot be tokenized: {fix}.")


def prompt_tokens(model: Any, prompt: str | torch.Tensor | Sequence[int], too_long: str = "") -> torch.Tensor:
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
    return tokens.to(model.cfg.device)
