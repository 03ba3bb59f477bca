"""Acting on SAE features: ablation and steering as `interpwidgets.interventions.Intervention`s."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interpwidgets.interventions import Intervention
from interpwidgets.sae.base import SAE
from interpwidgets.sae.features import _check_feature
from interpwidgets.sae.hooks import as_dictionary_input, check_fits, to_dictionary


def _feature_edits(sae: SAE, edit_output) -> list:
    """Hook edits that compute features from the input hook and change the output hook with `edit_output(flat_out, f)`
    (both on the SAE's device and in its dtype; the result is cast back to the hook's)."""
    captured: dict[str, torch.Tensor] = {}
    cfg = sae.cfg

    def read(act: torch.Tensor) -> torch.Tensor:
        captured["x"] = as_dictionary_input(act, cfg.d_in, cfg.hook_name)
        return act

    def write(act: torch.Tensor) -> torch.Tensor:
        x = captured.pop("x") if sae.is_transcoder else as_dictionary_input(act, cfg.d_in, cfg.hook_name)
        flat = as_dictionary_input(act, cfg.d_out, cfg.output_hook)
        f = sae.encode(to_dictionary(sae, x))
        return edit_output(to_dictionary(sae, flat), f).to(act).reshape(act.shape)

    return ([(cfg.hook_name, read)] if sae.is_transcoder else []) + [(cfg.output_hook, write)]


def ablate_features(model, sae: SAE, features: int | Sequence[int], positions: Sequence[int] | None = None) -> Intervention:
    """Remove `features`' contributions `f_i * W_dec[i]` from the output hook (all positions, or `positions`).

    Equivalent to splicing the SAE with its error term and setting those features to zero.
    """
    check_fits(model, sae)
    idx = torch.tensor([_check_feature(sae, f) for f in ([features] if isinstance(features, int) else features)])

    def edit(out: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        delta = f[..., idx] @ sae.W_dec[idx]
        if positions is not None:
            mask = torch.zeros(out.shape[-2], 1, dtype=delta.dtype, device=delta.device)
            mask[list(positions)] = 1
            delta = delta * mask
        return out - delta

    return Intervention(model, _feature_edits(sae, edit), f"ablate {len(idx)} feature(s) of {sae.cfg.hook_name}")


def steer_feature(model, sae: SAE, feature: int, alpha: float, positions: Sequence[int] | None = None) -> Intervention:
    """Add `alpha * W_dec[feature]` to the output hook (all positions, or `positions`)."""
    check_fits(model, sae)
    feature = _check_feature(sae, feature)
    vector = float(alpha) * sae.W_dec[feature].detach()
    cfg = sae.cfg

    def edit(act: torch.Tensor) -> torch.Tensor:
        flat = as_dictionary_input(act, cfg.d_out, cfg.output_hook).clone()
        if positions is None:
            flat += vector.to(flat.device, flat.dtype)
        else:
            flat[..., list(positions), :] += vector.to(flat.device, flat.dtype)
        return flat.reshape(act.shape)

    return Intervention(model, [(cfg.output_hook, edit)], f"steer feature {feature} of {cfg.hook_name} by {alpha:g}")
