"""Steering: add `alpha * direction` to an activation at chosen positions."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interpwidgets.interventions.components import Component, parse_component
from interpwidgets.interventions.intervention import Intervention


def steer(
    model,
    target: "str | Component",
    direction: torch.Tensor,
    alpha: float = 1.0,
    positions: int | Sequence[int] | None = None,
) -> Intervention:
    """Add `alpha * direction` to `target`'s activation (all positions, or `positions`).

    target: a hook name ("blocks.2.hook_resid_pre"), a short name ("resid_pre2", "L1H2"), or a Component
    (its head / positions are respected). direction: [d], the size of the activation's last axis
    (d_model for residual hooks, d_head for a head's z/q/k/v); it is used as given, not normalised.
    """
    component = parse_component(target, model)
    if positions is not None:
        component = component.at(positions)
    if component.neuron is not None or component.direction is not None:
        raise ValueError(f"steer() adds a vector to the whole activation; {component.label} names a neuron or direction.")
    vector = torch.as_tensor(direction).detach()
    if vector.ndim != 1:
        raise ValueError(f"direction must be a 1-D vector [d], got shape {tuple(vector.shape)}.")
    vector = float(alpha) * vector

    def add(act: torch.Tensor) -> torch.Tensor:
        if act.shape[-1] != vector.shape[0]:
            raise ValueError(
                f"steer at {component.hook_name}: direction has {vector.shape[0]} entries but the activation's last "
                f"axis has {act.shape[-1]}; pass a [{act.shape[-1]}] vector."
            )
        return component.add(act.clone(), vector.to(act.device))

    return Intervention(model, component.edits(model, add), f"steer {component.label} by {alpha:g}")
