"""Token ids as display strings, for models with or without a tokenizer (one place for engine and widgets).

A model loaded without a tokenizer (`model.tokenizer is None`) reads token ids only; its tokens show as "#42".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def has_tokenizer(model: Any) -> bool:
    return getattr(model, "tokenizer", None) is not None


def token_strings(model: Any, ids: Iterable[int]) -> list[str]:
    """Each token id decoded on its own, or "#id" for a model without a tokenizer."""
    if not has_tokenizer(model):
        return [f"#{int(i)}" for i in ids]
    return [model.tokenizer.decode([int(i)]) for i in ids]


def token_text(model: Any, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
    """Token ids decoded as one text, or their "#id" strings joined by spaces for a model without a tokenizer."""
    if not has_tokenizer(model):
        return " ".join(token_strings(model, ids))
    return model.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)


def top_tokens(model: Any, logits, k: int = 5) -> list[tuple[str, float]]:
    """The `k` most probable next tokens of one position's logits `[vocab]`, as (token string, probability)."""
    probs = logits.float().softmax(-1)
    values, ids = probs.topk(min(k, probs.numel()))
    return list(zip(token_strings(model, ids.tolist()), values.tolist()))
