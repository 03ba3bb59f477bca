"""Steering: add `alpha * direction` to an activation at chosen positions, and how large `alpha` is."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interpwidgets.interventions.components import Component, parse_component
from interpwidgets.interventions.intervention import Intervention
from interpwidgets.models.device import device_of


def steer(
    model,
    target: "str | Component",
    direction: torch.Tensor,
    *,
    alpha: float = 1.0,
    positions: int | Sequence[int] | None = None,
) -> Intervention:
    """Add `alpha * direction` to `target`'s activation (all positions, or `positions`).

    target: a hook name ("blocks.2.hook_resid_pre"), a short name ("resid_pre2", "L1H2"), or a Component
    (its head / positions are respected). direction: [d], the size of the activation's last axis
    (d_model for residual hooks, d_head for a head's z/q/k/v); it is used as given, not normalised.
    """
    component, vector = _steerable(model, target, direction, positions)
    vector = float(alpha) * vector

    def add(act: torch.Tensor) -> torch.Tensor:
        _check_width(component, vector, act.shape[-1])
        return component.add(act.clone(), vector.to(act.device))

    return Intervention(model, component.edits(model, add), f"steer {component.label} by {alpha:g}")


@torch.no_grad()
def steering_alpha(
    model,
    tokens: torch.Tensor,
    target: "str | Component",
    direction: torch.Tensor,
    *,
    ratio: float = 1.0,
    positions: int | Sequence[int] | None = None,
) -> float:
    """The `alpha` at which `steer(model, target, direction, alpha=alpha)` adds a vector `ratio` times as long as
    `target`'s activation typically is on `tokens` [batch, seq]: `ratio * mean ||x|| / ||direction||`, the L2
    norm of the activation's part `x` [..., d] averaged over batch and positions (one forward pass).
    """
    component, vector = _steerable(model, target, direction, positions)
    if not float(vector.norm()) > 0:
        raise ValueError(f"the direction at {component.label} must be nonzero to measure alpha against it.")
    hook = component.hook_name
    _, cache = model.run_with_cache(torch.as_tensor(tokens).to(device_of(model)), names_filter=lambda name: name == hook)
    part = component.select(cache[hook].float())  # [batch, seq, d] (a head's part for a per-head hook)
    _check_width(component, vector, part.shape[-1])
    return float(ratio) * float(part.norm(dim=-1).mean()) / float(vector.norm())


def _steerable(model, target, direction, positions) -> tuple[Component, torch.Tensor]:
    """The checked component (at `positions`) and `direction` as a [d] float tensor."""
    component = parse_component(target, model)
    if positions is not None:
        component = component.at(positions)
    if component.neuron is not None or component.direction is not None:
        raise ValueError(f"steer() adds a vector to the whole activation; {component.label} names a neuron or direction.")
    vector = torch.as_tensor(direction).detach()
    if vector.ndim != 1 or not torch.isfinite(vector).all():
        raise ValueError(f"direction must be a finite 1-D vector [d], got shape {tuple(vector.shape)}.")
    return component, vector


def _check_width(component: Component, vector: torch.Tensor, width: int) -> None:
    if width != vector.shape[0]:
        raise ValueError(
            f"steer at {component.hook_name}: direction has {vector.shape[0]} entries but the activation's last axis "
            f"(its width) has {width}; pass a [{width}] vector."
        )
