"""Attribution patching: a gradient estimate of every cell's activation-patching effect at once.

For a site's activation a at layer l, patching a cell changes the metric by about
    (a_source - a_base)[cell] . dmetric/da[cell]
"grad" (Nanda's attribution patching) takes the gradient on the base run: one forward and one
backward for all layers. "ig" (integrated gradients, as Marks et al. 2024 use it) averages the
gradient over `steps` points a_base + alpha (a_source - a_base), alpha at the midpoints
(i + 0.5) / steps, interpolating one layer at a time; all (layer, step) runs share stacked
forwards and one backward per chunk. Summed over all cells of a layer, "ig" converges to that
layer's whole-activation patching effect as `steps` grows.
"""

from __future__ import annotations

from typing import Literal

import torch

from interpwidgets.interventions import Component
from interpwidgets.models.device import device_of
from interpwidgets.patching.result import PatchResult, axis_labels
from interpwidgets.patching.runs import (
    Metric,
    check_direction,
    check_task,
    normalise,
    reads_last_position_only,
    resolve_metric,
    run_baseline,
    scalar,
)
from interpwidgets.patching.sites import default_granularity, get_site
from interpwidgets.patching.stacking import chunks, groups_per_chunk, stacked_forward


def attribution_patch(
    model,
    task,
    site: str = "z",
    by: str | None = None,
    method: Literal["grad", "ig"] = "grad",
    steps: int = 10,
    direction: Literal["denoising", "noising"] = "denoising",
    normalize: bool = True,
    metric: Metric | None = None,
    batch_budget_mb: float | None = None,
    progress: bool = True,
) -> PatchResult:
    """Estimate `activation_patch(model, task, site, by, direction, ...)` for every cell from gradients.

    Values have the same shape and meaning as activation patching's (the estimated metric after
    patching each cell, normalised 0 = corrupt, 1 = clean unless `normalize=False`). `steps` is the
    number of integrated-gradient points for method="ig" (ignored for "grad"). The metric must be
    differentiable. Model parameters' `.grad` are left untouched.
    """
    if method not in ("grad", "ig"):
        raise ValueError(f"method must be 'grad' (attribution patching) or 'ig' (integrated gradients), got {method!r}.")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}.")
    site_ = get_site(site, model)
    by = by or default_granularity(site_)
    check_task(model, task)
    check_direction(direction)
    last_only = reads_last_position_only(task, metric)
    metric = resolve_metric(task, metric)
    cfg = model.cfg
    axes, shape, cells = site_.cells(model, task.clean_tokens.shape[1], by)
    hooks = [site_.hook_name(layer) for layer in range(cfg.n_layers)]
    baseline = run_baseline(model, task, metric, hooks)
    base_name, base, source = baseline.base_and_source(direction)
    delta = {name: source[name] - base[name] for name in hooks}
    grads = _mean_gradients(model, getattr(task, f"{base_name}_tokens"), hooks, delta, metric, method, steps, batch_budget_mb, progress,
                           last_only)
    effect = {name: (delta[name] * grads[name]).float() for name in hooks}  # summed in float32
    estimate = torch.stack([effect[c.hook_name][c.index(effect[c.hook_name])].sum() for c in cells]).cpu()
    values = (getattr(baseline, f"{base_name}_metric") + estimate).view(shape)
    return PatchResult(
        values=normalise(values, baseline) if normalize else values,
        axes=axes,
        labels=axis_labels(model, task, axes),
        site=site_.name,
        method=f"attribution-{method}",
        direction=direction,
        normalized=normalize,
        model=model,
        task=task,
        cells=[(cell,) for cell in cells],
        baseline=baseline,
        metric=metric,
        details={"by": by, "steps": steps if method == "ig" else 1},
    )


def _mean_gradients(model, tokens, hooks, delta, metric, method, steps, budget_mb, progress, last_only) -> dict[str, torch.Tensor]:
    """dmetric/da at each hook, on the base run ("grad") or averaged over the interpolation points ("ig").

    Each run adds a leaf tensor `alpha * delta` to the hook's activation and differentiates with
    respect to it, so the gradient is the total derivative through every later layer.
    """
    if method == "grad":
        plan = [[(name, 0.0) for name in hooks]]
    else:
        plan = [[(name, (i + 0.5) / steps)] for name in hooks for i in range(steps)]
    weight = 1.0 if method == "grad" else 1.0 / steps
    grads = {name: torch.zeros_like(delta[name]) for name in hooks}
    tokens = tokens.to(device_of(model))
    # IG runs edit one layer each: an unedited run leads each chunk so they can join at their layer
    lead = 1 if method == "ig" else 0
    per_chunk = max(1, groups_per_chunk(model, *tokens.shape, budget_mb, grad=True, last_position_only=last_only) - lead)
    for part in chunks(len(plan), per_chunk, f"attribution ({method})", progress):
        groups, leaves = [[]] * lead, []
        for g in part:
            edits = []
            for name, alpha in plan[g]:
                shift = (alpha * delta[name]).detach().requires_grad_(True)
                edits += Component(name).edits(model, _adder(shift))
                leaves.append((name, shift))
            groups.append(edits)
        with torch.enable_grad():
            logits, _ = stacked_forward(model, tokens, groups, late_from=0 if lead else None, last_position_only=last_only)
            total = sum(scalar(metric(group_logits), "metric") for group_logits in logits[lead:])
            found = torch.autograd.grad(total, [leaf for _, leaf in leaves], allow_unused=True)
        for (name, _), grad in zip(leaves, found):
            if grad is not None:
                grads[name] += weight * grad.detach()
    return grads


def _adder(shift: torch.Tensor):
    def add(act: torch.Tensor) -> torch.Tensor:
        return act + shift

    return add
