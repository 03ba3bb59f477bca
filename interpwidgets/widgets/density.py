"""How often a feature fires, as the SAE widgets mark it, and which feature a view of a prompt opens on.

A feature's density is measured over a corpus (`iw.sae.feature_stats`' `FeatureStats.density`) where the widget
has the statistics, else over the prompt it shows. A prompt is a small sample, so it is held to a higher bar: on
the IOI prompt and the bundled last-layer residual SAE, 167 of the 402 features active on it fire on more than 10%
of its tokens, only 53 of them on more than 10% of a 16,384-token corpus; above 30% of the prompt, 10 of 11 do.
Every payload says which it measured (`over`), so the front end can say it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from interpwidgets.interventions import Component
from interpwidgets.sae.corpus_stats import FeatureStats
from interpwidgets.sae.sets import SAESet

DENSE = 0.1  # a feature active on more than this fraction of a corpus's tokens is marked dense
DENSE_ON_PROMPT = 0.3  # ... or, without corpus statistics, on more than this fraction of a prompt's tokens
MIN_PROMPT_TOKENS = 10  # a shorter prompt says nothing about density
_RESIDUAL_ORDER = {"resid_pre": 0, "resid_mid": 1, "resid_post": 2}


def corpus_density(stats: FeatureStats, feature: int) -> dict[str, Any]:
    """`{over: "corpus", fraction, active, n_tokens, dense}` of `feature` from corpus statistics."""
    fraction = float(stats.density[feature])
    return {"over": "corpus", "fraction": fraction, "active": round(fraction * stats.n_tokens),
            "n_tokens": int(stats.n_tokens), "dense": fraction > DENSE}


def prompt_density(acts: torch.Tensor, feature: int, start: int = 0) -> dict[str, Any]:
    """`{over: "prompt", fraction, active, n_tokens, dense}` of `feature` on a prompt's activations `[seq, d_sae]`,
    counting the tokens from `start` (past a BOS token)."""
    column = acts[start:, feature]
    n, active = column.numel(), int((column > 0).sum())
    fraction = active / n if n else 0.0
    return {"over": "prompt", "fraction": fraction, "active": active, "n_tokens": n,
            "dense": n >= MIN_PROMPT_TOKENS and fraction > DENSE_ON_PROMPT}


def text_start(model: Any, ids: torch.Tensor) -> int:
    """1 when the prompt `[seq]` begins with the tokenizer's BOS token (and has more tokens), else 0."""
    bos = getattr(getattr(model, "tokenizer", None), "bos_token_id", None)
    return int(bos is not None and ids.numel() > 1 and int(ids[0]) == bos)


def last_residual(hooks: list[str]) -> str | None:
    """The hook of the residual-stream dictionary deepest in the model (resid_post after resid_mid after
    resid_pre of a block), or None when no dictionary reads the residual stream."""
    def depth(hook: str) -> tuple[int, int] | None:
        leaf, layer = hook.rsplit(".", 1)[-1].removeprefix("hook_"), Component(hook).layer
        return None if layer is None or leaf not in _RESIDUAL_ORDER else (layer, _RESIDUAL_ORDER[leaf])
    residual = [(depth(hook), hook) for hook in hooks if depth(hook) is not None]
    return max(residual)[1] if residual else None


def most_active(acts: torch.Tensor, start: int = 0) -> int:
    """The feature with the largest activation on the tokens from `start` of `acts [seq, d_sae]` (0 if none fires)."""
    peaks = acts[start:].max(dim=0).values if acts.shape[0] > start else acts.max(dim=0).values
    return int(peaks.argmax()) if float(peaks.max()) > 0 else 0


def stats_by_hook(saes: SAESet, stats: FeatureStats | Iterable[FeatureStats] | None) -> dict[str, FeatureStats]:
    """`{hook: FeatureStats}` of `stats=`, each checked against its dictionary."""
    given = [] if stats is None else [stats] if isinstance(stats, FeatureStats) else list(stats)
    out = {}
    for item in given:
        if not isinstance(item, FeatureStats):
            raise TypeError(f"stats= takes iw.sae.feature_stats results, got {type(item).__name__}.")
        if item.hook not in saes or item.d_sae != saes[item.hook].cfg.d_sae:
            raise ValueError(f"The statistics of {item.hook!r} ({item.d_sae} features) belong to none of the SAEs given.")
        out[item.hook] = item
    return out
