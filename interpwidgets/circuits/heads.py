"""Which attention heads write an attention-output SAE feature.

The attention output is the sum of the heads' outputs plus a bias, attn_out = sum_h z_h @ W_O[h] + b_O,
and an SAE feature's pre-activation is affine in attn_out, so it splits exactly into one term per
head plus a constant:

    pre_j = sum_h (z_h @ W_O[h]) @ W_enc[:, j]  +  (b_O - b_dec * apply_b_dec_to_input) @ W_enc[:, j] + b_enc[j]

(for a gated SAE the magnitude path's encoder `W_enc * exp(r_mag)` and `b_mag` take their place).
"""

from __future__ import annotations

import torch

from interpwidgets.circuits.runs import device_of
from interpwidgets.interventions.hooks import hooked


def _encoder_column(sae, feature: int) -> torch.Tensor:
    column = sae.W_enc[:, feature]
    r_mag = getattr(sae, "r_mag", None)
    return column * r_mag[feature].exp() if r_mag is not None else column


def attention_feature_heads(model, sae, tokens: torch.Tensor, feature: int, position: int | None = None) -> torch.Tensor:
    """`[n_heads]` each head's contribution to feature `feature`'s pre-activation, averaged over prompts.

    sae: an SAE reading "blocks.L.hook_attn_out"; tokens: `[batch, seq]`. position: one position, or
    None to average over the positions where the feature is active (all positions if it never is).
    """
    hook = sae.cfg.hook_name
    if not hook.endswith(".hook_attn_out") or sae.is_transcoder:
        raise ValueError(f"attention_feature_heads needs an SAE reading 'blocks.L.hook_attn_out', not {hook!r}.")
    if not 0 <= feature < sae.cfg.d_sae:
        raise ValueError(f"feature {feature} is outside the SAE's {sae.cfg.d_sae} features.")
    layer = int(hook.split(".")[1])
    store: dict[str, torch.Tensor] = {}

    def keep(name):
        def fn(x, hook):
            store[name] = x.detach()
            return x
        return fn

    with torch.no_grad(), hooked(model, [(f"blocks.{layer}.attn.hook_z", keep("z")), (hook, keep("out"))]):
        model(tokens.to(device_of(model)))
        W_O = model.blocks[layer].attn.W_O  # [n_heads, d_head, d_model]
        per_head = torch.einsum("bphd,hdm->bphm", store["z"], W_O) @ _encoder_column(sae, feature)  # [batch, seq, n_heads]
        if position is not None:
            return per_head[:, position].mean(0)
        active = sae.encode(store["out"])[..., feature] != 0  # [batch, seq]
        if not bool(active.any()):
            return per_head.mean((0, 1))
        return per_head[active].mean(0)
