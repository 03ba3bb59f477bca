"""Which attention heads write an attention-output SAE feature.

The attention output is the sum of the heads' outputs plus a bias, attn_out = sum_h z_h @ W_O[h] + b_O,
and an SAE feature's pre-activation is affine in attn_out, so it splits exactly into one term per
head plus a constant:

    pre_j = sum_h (z_h @ W_O[h]) @ W_enc[:, j]  +  (b_O - b_dec * apply_b_dec_to_input) @ W_enc[:, j] + b_enc[j]

(for a gated SAE the magnitude path's encoder `W_enc * exp(r_mag)` and `b_mag` take their place).
On Gemma 2 and 3 the attention output passes an RMSNorm before the hook; with its scale s held at the
clean value it is linear, attn_out = sum_h (z_h @ W_O[h]) / s * w, and each head's share goes through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interpwidgets.circuits.passes import record
from interpwidgets.interventions import Component
from interpwidgets.sae.architectures import GatedSAE
from interpwidgets.sae.base import SAE
from interpwidgets.sae.inputs import to_dictionary


def _encoder_column(sae: SAE, feature: int) -> torch.Tensor:
    """The encoder column `[d_in]` that the feature's pre-activation is affine in (gated: the magnitude path's)."""
    column = sae.W_enc[:, feature]
    return column * sae.r_mag[feature].exp() if isinstance(sae, GatedSAE) else column


def attention_feature_heads(
    model, sae: SAE, tokens: torch.Tensor, features: int | Sequence[int], positions: int | None | Sequence[int | None] = None,
) -> torch.Tensor:
    """Each head's contribution to each feature's pre-activation, averaged over prompts: `[n_features, n_heads]`
    (`[n_heads]` for a single int feature). One forward pass for all features.

    sae: an SAE reading "blocks.L.hook_attn_out"; tokens: `[batch, seq]`. positions: per feature (or one
    for all) a position, or None to average over the positions where the feature is active (over all
    positions if it never is).
    """
    hook = sae.cfg.hook_name
    if not hook.endswith(".hook_attn_out") or sae.is_transcoder:
        raise ValueError(f"attention_feature_heads needs an SAE reading 'blocks.L.hook_attn_out', not {hook!r}.")
    single = isinstance(features, int)
    features = [features] if single else [int(f) for f in features]
    if not isinstance(positions, Sequence):
        positions = [positions] * len(features)
    if len(positions) != len(features):
        raise ValueError(f"Got {len(positions)} positions for {len(features)} features.")
    bad = [f for f in features if not 0 <= f < sae.cfg.d_sae]
    if bad:
        raise ValueError(f"features {bad[:5]} are outside the SAE's {sae.cfg.d_sae} features.")
    heads_out, attn_out = _head_outputs(model, Component(hook).layer, tokens)
    with torch.no_grad():
        columns = torch.stack([_encoder_column(sae, f) for f in features], dim=-1)  # [d_model, n_features]
        per_head = to_dictionary(sae, heads_out) @ columns  # [batch, seq, head, n_features]
        active = sae.encode(to_dictionary(sae, attn_out))[..., features] != 0  # [batch, seq, n_features]
        rows = []
        for i, position in enumerate(positions):
            if position is not None:
                rows.append(per_head[:, position, :, i].mean(0))
            elif bool(active[..., i].any()):
                rows.append(per_head[..., i][active[..., i]].mean(0))
            else:
                rows.append(per_head[..., i].mean((0, 1)))
    out = torch.stack(rows)
    return out[0] if single else out


@torch.no_grad()
def _head_outputs(model, layer: int, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(each head's share of `blocks.L.hook_attn_out` `[batch, seq, head, d_model]`, the hook's activation
    `[batch, seq, d_model]`) on `tokens`. z is per query head also on grouped-query models. Where a
    post-attention RMSNorm sits before the hook (Gemma 2 and 3), the shares pass through it with its scale
    held at the clean value, so they still add up to the hook's activation (less b_O's share)."""
    prefix = f"blocks.{layer}"
    post = getattr(model.blocks[layer], "ln1_post", None)
    names = ["attn.hook_z", "hook_attn_out"] + (["ln1_post.hook_scale", "ln1_post.hook_normalized"] if post is not None else [])
    if post is not None and "RMS" not in type(post).__name__:
        raise NotImplementedError(f"The post-attention norm of layer {layer} is a {type(post).__name__}; head shares "
                                  "are defined through an RMSNorm only.")
    _, acts = record(model, tokens, [f"{prefix}.{name}" for name in names])
    store = {name: acts[f"{prefix}.{name}"] for name in names}
    shares = torch.einsum("bphd,hdm->bphm", store["attn.hook_z"], model.blocks[layer].attn.W_O)
    if post is None:
        return shares, store["hook_attn_out"]
    normalized, out = store["ln1_post.hook_normalized"], store["hook_attn_out"]
    # out = normalized * weight elementwise; the least-squares weight per channel recovers it exactly
    weight = (out * normalized).sum((0, 1)) / normalized.pow(2).sum((0, 1)).clamp_min(1e-30)
    return shares / store["ln1_post.hook_scale"][..., None] * weight, out
