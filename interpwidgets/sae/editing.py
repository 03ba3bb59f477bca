"""Acting on SAE features: ablation and steering as `interpwidgets.interventions.Intervention`s.

`ablate_features` is also the intervention of SHIFT (Marks et al. 2024, section 4), over any number of SAEs
and transcoders at once: the chosen features are set to zero (or to their per-position mean) and everything
else is kept, error terms included, so

    y -> y - (f[chosen] - value[chosen]) @ W_dec[chosen]

at each dictionary's output hook, with f read at its input hook (the same hook for an SAE; for a transcoder
the MLP input); later layers see the edited activations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import torch

from interpwidgets.interventions import Intervention, check_ablation
from interpwidgets.sae.activations import hook_activations
from interpwidgets.sae.base import SAE
from interpwidgets.sae.features import check_feature
from interpwidgets.sae.inputs import as_dictionary_input, check_fits, to_dictionary
from interpwidgets.sae.sets import SAESet

FEATURE_ABLATIONS = ("zero", "mean")
"""The ablations a feature (or circuit node) takes: zero, or its per-position mean over reference prompts."""


@runtime_checkable
class FeatureSelection(Protocol):
    """Anything that names features by dictionary, e.g. an `iw.circuits.Circuit`."""

    def features_by_dictionary(self) -> Mapping[str, Sequence[int]]:
        """`{dictionary input hook: [feature indices]}`."""
        ...


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


def ablate_features(
    model,
    saes: SAE | SAESet | Mapping[str, SAE],
    features: int | Sequence[int] | Mapping[str, Sequence[int]] | FeatureSelection,
    *,
    ablation: str = "zero",
    reference: torch.Tensor | None = None,
    positions: Sequence[int] | None = None,
) -> Intervention:
    """Set `features` to zero or to their mean while the model runs, error terms kept.

    saes, features: one SAE and its feature indices (`ablate_features(model, sae, [3, 7])`), or several
        dictionaries (an `SAESet`, or what `SAESet.of` takes) and `{input hook: [indices]}` or a
        `FeatureSelection` such as a `Circuit` (each node names its dictionary; node positions are dropped,
        see `positions`).
    ablation: "zero", or "mean" (each feature's mean activation over `reference [batch, seq]`, per position).
    positions: edit only these token positions (default: all).
    Equivalent to splicing the dictionaries with their error terms and setting those features to their value.
    Use it as a context manager (`with ablate_features(...): model(tokens)`) or `.run(tokens)`; compose by `+`.
    """
    saes, chosen = _selection(saes, features)
    check_ablation(ablation, FEATURE_ABLATIONS)
    if ablation == "mean" and reference is None:
        raise ValueError("ablation='mean' needs reference=, the prompts [batch, seq] to average feature activations over.")
    means = _mean_activations(model, saes, chosen, reference) if ablation == "mean" else {}
    edits = []
    for hook, idx in chosen.items():
        check_fits(model, saes[hook])
        edits += _feature_edits(saes[hook], _ablating(saes[hook], idx, means.get(hook), positions))
    n = sum(len(i) for i in chosen.values())
    return Intervention(model, edits, f"{ablation}-ablate {n} feature(s) of {', '.join(chosen)}")


def _selection(saes, features) -> tuple[SAESet, dict[str, list[int]]]:
    """(dictionaries by input hook, `{input hook: [checked indices]}`) of one of `ablate_features`' call forms."""
    if isinstance(saes, SAE):
        indices = [features] if isinstance(features, int) else features
        if isinstance(indices, (Mapping, FeatureSelection)):
            raise TypeError("With a single SAE, pass its feature indices (an int or a list); with several, pass the SAESet.")
        features = {saes.cfg.hook_name: indices}
    elif isinstance(features, FeatureSelection):
        features = features.features_by_dictionary()
    elif not isinstance(features, Mapping):
        raise TypeError(f"features must be {{input hook: [indices]}} or a Circuit when saes is an SAESet; got {type(features).__name__}.")
    saes = SAESet.of(saes)
    chosen = {}
    for hook, idx in features.items():
        if hook not in saes:
            raise ValueError(f"No SAE reads {hook!r}; the dictionaries read {sorted(saes)}.")
        if idx:
            chosen[hook] = sorted({check_feature(i, saes[hook].cfg.d_sae) for i in idx})
    if not chosen:
        raise ValueError("No features to ablate: `features` selects no SAE feature (error, embedding and bias nodes are not features).")
    return saes, chosen


def _ablating(sae: SAE, idx: list[int], mean: torch.Tensor | None, positions: Sequence[int] | None):
    """`edit_output(out, f)` of `_feature_edits`: out - (f[idx] - value) @ W_dec[idx] at `positions`, where
    value is 0 or `mean [seq, len(idx)]`."""
    index = torch.tensor(idx, device=sae.W_dec.device)

    def edit(out: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        current = f[..., index]  # [..., seq, n]
        if mean is not None and mean.shape[0] < current.shape[-2]:
            raise ValueError(f"Mean ablation has means for {mean.shape[0]} positions (the reference prompts' length) "
                             f"but the model runs {current.shape[-2]}.")
        value = 0.0 if mean is None else mean[: current.shape[-2]].to(current)
        delta = (current - value) @ sae.W_dec[index]
        if positions is not None:
            mask = torch.zeros(out.shape[-2], 1, dtype=delta.dtype, device=delta.device)
            mask[list(positions)] = 1
            delta = delta * mask
        return out - delta

    return edit


def _mean_activations(model, saes: SAESet, chosen: dict[str, list[int]], tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per input hook `[seq, n_chosen]`: the mean activation of each chosen feature over `tokens`, per position."""
    acts = hook_activations(model, tokens, list(chosen))
    with torch.no_grad():
        return {hook: saes[hook].encode(to_dictionary(saes[hook], as_dictionary_input(acts[hook], saes[hook].cfg.d_in, hook)))
                [..., idx].mean(0) for hook, idx in chosen.items()}


def steer_feature(model, sae: SAE, feature: int, alpha: float, positions: Sequence[int] | None = None) -> Intervention:
    """Add `alpha * W_dec[feature]` to the output hook (all positions, or `positions`)."""
    check_fits(model, sae)
    feature = check_feature(feature, sae.cfg.d_sae)
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
