"""Ablation (zero, mean, resample) and patching of components, as `Intervention`s."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Union

import torch

from interpwidgets.interventions.components import Component, parse_components
from interpwidgets.interventions.intervention import Intervention

Ablation = Literal["zero", "mean", "resample"]
Reference = Union[torch.Tensor, Mapping[str, torch.Tensor], None]
"""Reference tokens [batch, seq], or activations by hook name (e.g. an ActivationCache), or None."""
ABLATIONS = ("zero", "mean", "resample")
"""The one set of ablation choices, shared by interventions, patching results, SAE features and circuits."""


def ablate(
    model,
    components,
    *,
    ablation: Ablation = "zero",
    reference: Reference = None,
    positions: int | Sequence[int] | None = None,
) -> Intervention:
    """Ablate `components` (a Component, short name like "L1H2" / "mlp0" / "L2N5", hook name, or a list).

    ablation "zero": set them to 0 (a direction component: remove the projection on it).
    ablation "mean": set them to their mean over the `reference` batch, position by position (reference
      tokens must then have the run's sequence length); with `reference=None`, the mean over the
      batch being run.
    ablation "resample": set them to their values on `reference` (tokens of the run's [batch, seq] shape,
      row i taking reference row i), e.g. the task's corrupt prompts.
    positions: restrict to these token positions (components that name their own positions keep them).
    Reference activations are recorded once, when `ablate` is called.
    """
    check_ablation(ablation)
    parsed = parse_components(components, model, positions)
    if ablation == "resample" and reference is None:
        raise ValueError("Resample ablation needs `reference`: tokens (e.g. task.corrupt_tokens) or activations.")
    values = reference_activations(model, reference, {c.hook_name for c in parsed}) if reference is not None else None
    edits = []
    for component in parsed:
        source = _source(ablation, component.hook_name, values)
        edits += component.edits(model, _writer(component, source))
    return Intervention(model, edits, f"{ablation}-ablate " + ", ".join(c.label for c in parsed))


def check_ablation(ablation: str, allowed: Sequence[str] = ABLATIONS) -> None:
    """Raise a ValueError naming the choices if `ablation` is not one of `allowed` (ABLATIONS, or the subset of them
    that a method implements)."""
    if ablation not in allowed:
        raise ValueError(f"Unknown ablation {ablation!r}: ablation must be one of {tuple(allowed)}.")


def patch(model, components, source: Reference, *, positions: int | Sequence[int] | None = None) -> Intervention:
    """Set `components` to their values on `source` (tokens of the run's [batch, seq] shape, or activations)."""
    return ablate(model, components, ablation="resample", reference=source, positions=positions)


def reference_activations(model, reference: Reference, hook_names: set[str]) -> dict[str, torch.Tensor]:
    """Activations at `hook_names` for reference tokens [batch, seq] (one forward), or picked from a mapping."""
    if isinstance(reference, torch.Tensor):
        if reference.ndim != 2 or reference.is_floating_point():
            raise ValueError(
                f"reference tokens must be integer ids of shape [batch, seq], got {reference.dtype} "
                f"{tuple(reference.shape)}."
            )
        with torch.no_grad():
            _, cache = model.run_with_cache(reference, names_filter=lambda name: name in hook_names)
        return {name: cache[name].detach() for name in hook_names}
    missing = [name for name in hook_names if not _has(reference, name)]
    if missing:
        raise ValueError(f"The reference activations lack {missing}; cache those hook points or pass tokens.")
    return {name: reference[name].detach() for name in hook_names}


def _has(mapping, name: str) -> bool:
    try:
        mapping[name]
    except KeyError:
        return False
    return True


def _source(ablation: str, hook_name: str, values: dict[str, torch.Tensor] | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The replacement values for an activation at `hook_name` under `ablation`, as a function of the activation."""
    if ablation == "zero":
        return lambda act: act.new_zeros(())
    if values is None:
        return lambda act: act.mean(0, keepdim=True)
    reference = values[hook_name]
    if ablation == "mean":
        reference = reference.mean(0, keepdim=True)

    def fetch(act: torch.Tensor) -> torch.Tensor:
        exact = ablation == "resample"
        if reference.shape[1:] != act.shape[1:] or (exact and reference.shape[0] != act.shape[0]):
            need = "the same [batch, seq]" if exact else "the same sequence length"
            raise ValueError(
                f"{ablation} ablation at {hook_name}: the reference activations have shape {tuple(reference.shape)} but "
                f"the run's have {tuple(act.shape)}; use reference tokens with {need} as the tokens you run."
            )
        return reference.to(act.device)

    return fetch


def _writer(component: Component, source: Callable[[torch.Tensor], torch.Tensor]):
    def write(act: torch.Tensor) -> torch.Tensor:
        return component.write(act.clone(), source(act))

    return write
