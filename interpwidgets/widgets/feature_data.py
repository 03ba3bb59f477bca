"""Prompt-level computations behind the SAE feature widgets: dictionaries by hook, every dictionary's
feature activations from one forward pass, next-token predictions, logit effects (prompt tokens and
their display strings come from `tokens.py`).

A dictionary (SAE or transcoder) reads `x [..., d_in]` at `cfg.hook_name` and writes into the activation
at its output hook (the same hook for an SAE). Feature `f` contributes `acts[..., f] * W_dec[f]` there;
ablating and steering it are `iw.sae.features.ablate_features` / `steer_feature`, and its direct logit
effect is `W_dec[f] @ W_U`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from interpwidgets.sae import features as sae_features
from interpwidgets.sae.hooks import as_dictionary_input
from interpwidgets.widgets.tokens import prompt_tokens as prompt_tokens  # re-exported for this module's callers
from interpwidgets.widgets.tokens import token_strings


def dictionaries(saes: Any) -> dict[str, Any]:
    """`{input hook name: dictionary}` from one SAE, a dict of them (e.g. an `SAESet`) or an iterable."""
    if hasattr(saes, "cfg") and hasattr(saes, "W_dec"):
        items = [saes]
    elif isinstance(saes, Mapping):
        items = list(saes.values())
    elif isinstance(saes, Iterable) and not isinstance(saes, (str, bytes)):
        items = list(saes)
    else:
        raise TypeError(f"expected an SAE, a dict of SAEs (e.g. iw.sae.pretrained(model)) or a list, got {type(saes).__name__}.")
    out: dict[str, Any] = {}
    for sae in items:
        if not (hasattr(sae, "cfg") and hasattr(sae, "encode") and hasattr(sae, "W_dec")):
            raise TypeError(f"{type(sae).__name__} is not a dictionary (it needs cfg, encode and W_dec).")
        hook = sae.cfg.hook_name
        if hook in out:
            raise ValueError(f"two dictionaries read {hook!r}; pass one per hook.")
        out[hook] = sae
    if not out:
        raise ValueError("no SAEs given; pass at least one.")
    return out


def output_hook(sae: Any) -> str:
    """The hook a dictionary writes: its input hook for an SAE, `hook_name_out` for a transcoder."""
    return getattr(sae.cfg, "hook_name_out", None) or sae.cfg.hook_name


def device_of(model: Any) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def feature_activations(model: Any, saes: Sequence[Any], tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """`{input hook: acts [batch, seq, d_sae]}` (float32, CPU) of each dictionary on `tokens`, one forward."""
    hooks = sorted({sae.cfg.hook_name for sae in saes})
    _, cache = model.run_with_cache(tokens.to(device_of(model)), names_filter=lambda name: name in hooks)
    out = {}
    for sae in saes:
        hook = sae.cfg.hook_name
        x = as_dictionary_input(cache[hook], sae.cfg.d_in, hook)
        out[hook] = sae.encode(x.to(sae.W_enc.dtype)).float().cpu()
    return out


def check_feature(sae: Any, feature: int) -> None:
    d_sae = int(sae.cfg.d_sae)
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < d_sae:
        raise ValueError(f"feature must be an integer in [0, {d_sae - 1}], got {feature!r}.")


def top_predictions(model: Any, logits: torch.Tensor, k: int) -> list[tuple[str, float]]:
    """The `k` most probable next tokens and their probabilities from one position's logits `[vocab]`."""
    probs = torch.softmax(logits.float(), dim=-1)
    values, ids = probs.topk(k)
    return list(zip(token_strings(model, ids.tolist()), values.tolist()))


def logit_effects(model: Any, sae: Any, feature: int, k: int) -> dict[str, list[tuple[str, float]]] | None:
    """The `k` tokens most promoted ("positive") and suppressed ("negative") by `W_dec[feature] @ W_U`
    (`iw.sae.features.logit_effects`), tokens decoded as the widgets show them.

    None when the dictionary does not write the residual stream's width (e.g. a per-head hook_z SAE).
    """
    check_feature(sae, feature)
    try:
        values = sae_features.logit_effects(model, sae, feature, k=1)["values"].float()
    except ValueError:
        return None
    k = min(k, values.numel())
    top, bottom = values.topk(k), values.topk(k, largest=False)
    return {
        "positive": list(zip(token_strings(model, top.indices.tolist()), top.values.tolist())),
        "negative": list(zip(token_strings(model, bottom.indices.tolist()), bottom.values.tolist())),
    }
