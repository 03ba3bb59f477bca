"""Attribution patching: a gradient estimate of every cell's activation-patching effect at once.

For a site's activation a at layer l, patching a cell changes the metric by about
    (a_source - a_base)[cell] . dmetric/da[cell]
"atp" (Nanda's attribution patching) takes the gradient on the base run: one forward and one
backward for all layers. "ig" (integrated gradients, as Marks et al. 2024 use it) averages the
gradient over the points a_base + alpha (a_source - a_base), alpha from `integration.ig_alphas`,
interpolating one layer at a time; all (layer, step) runs share stacked forwards and one backward
per chunk. Summed over all cells of a layer, "ig" converges to that layer's whole-activation
patching effect as `steps` grows.
"""

from __future__ import annotations

from typing import Literal

import torch

from interpwidgets.interventions import Component
from interpwidgets.models.device import device_of
from interpwidgets.patching.integration import check_method, ig_alphas
from interpwidgets.patching.result import PatchResult
from interpwidgets.patching.runs import PatchInto, run_baseline
from interpwidgets.patching.stacking import chunks, groups_per_chunk, stacked_forward
from interpwidgets.patching.sweep import Sweep, prepare
from interpwidgets.tasks.metric import Metric, check_finite, check_metric


def attribution_patch(
    model,
    task,
    *,
    site: str = "z",
    by: str | None = None,
    method: Literal["atp", "ig"] = "atp",
    steps: int = 10,
    patch_into: PatchInto = "corrupt",
    metric: Metric | None = None,
    normalize: bool = True,
    batch_budget_mb: float | None = None,
    progress: bool | None = None,
) -> PatchResult:
    """Estimate `activation_patch(model, task, site=site, by=by, patch_into=patch_into, ...)` for every cell from gradients.

    Values have the same shape and meaning as activation patching's (the estimated metric after
    patching each cell, normalized 0 = corrupt, 1 = clean unless `normalize=False`). method: "atp"
    (attribution patching) or "ig" (integrated gradients over `steps` points; `steps` is ignored for
    "atp"). The metric must be differentiable. Model parameters' `.grad` are left untouched.
    """
    check_method(method, steps)
    sweep = prepare(model, task, site=site, by=by, patch_into=patch_into, metric=metric, normalize=normalize)
    hooks = sweep.hooks
    baseline = run_baseline(model, task, sweep.metric, hooks)
    base, source = baseline.base_and_source(patch_into)
    delta = {name: source[name] - base[name] for name in hooks}
    grads = _mean_gradients(sweep, getattr(task, f"{patch_into}_tokens"), delta, method, steps, batch_budget_mb, progress)
    effect = {name: (delta[name] * grads[name]).float() for name in hooks}  # summed in float32
    estimate = torch.stack([effect[c.hook_name][c.index(effect[c.hook_name])].sum() for c, in sweep.layout.cells]).cpu()
    values = baseline.metric_of(patch_into) + estimate
    return sweep.result(values, baseline, method=f"attribution-{method}", steps=steps if method == "ig" else 1)


def _mean_gradients(
    sweep: Sweep,
    tokens: torch.Tensor,
    delta: dict[str, torch.Tensor],
    method: str,
    steps: int,
    budget_mb: float | None,
    progress: bool | None,
) -> dict[str, torch.Tensor]:
    """dmetric/da at each hook of `delta`, on the base run `tokens` [batch, seq] ("atp") or averaged over the
    points a_base + alpha * delta, alpha in `ig_alphas(steps)` ("ig").

    Each run adds a leaf tensor `alpha * delta` to the hook's activation and differentiates with
    respect to it, so the gradient is the total derivative through every later layer.
    """
    model, hooks = sweep.model, list(delta)
    if method == "atp":
        plan, weight = [[(name, 0.0) for name in hooks]], 1.0
    else:
        plan, weight = [[(name, alpha)] for name in hooks for alpha in ig_alphas(steps)], 1.0 / steps
    grads = {name: torch.zeros_like(delta[name]) for name in hooks}
    tokens = tokens.to(device_of(model))
    # IG runs edit one layer each: an unedited run leads each chunk so they can join at their layer
    lead = 1 if method == "ig" else 0
    budget = groups_per_chunk(model, *tokens.shape, budget_mb, grad=True, last_position_only=sweep.last_position_only,
                              minimum=lead + 1)
    for part in chunks(len(plan), max(1, budget - lead), f"attribution ({method})", progress):
        groups, leaves = [[]] * lead, []
        for g in part:
            edits = []
            for name, alpha in plan[g]:
                shift = (alpha * delta[name]).detach().requires_grad_(True)
                edits += Component(name).edits(model, _adder(shift))
                leaves.append((name, alpha, shift))
            groups.append(edits)
        with torch.enable_grad():
            logits, _ = stacked_forward(model, tokens, groups, late_from=0 if lead else None,
                                        last_position_only=sweep.last_position_only)
            total = sum(check_metric(sweep.metric(group_logits), differentiable=True) for group_logits in logits[lead:])
            found = torch.autograd.grad(total, [leaf for _, _, leaf in leaves], allow_unused=True)
        for (name, alpha, _), grad in zip(leaves, found):
            if grad is not None:
                at = f" at alpha {alpha:g}" if method == "ig" else ""
                check_finite(grad, f"The metric's gradient at {name}{at}", dims=("prompt", "position"))
                grads[name] += weight * grad.detach()
    return grads


def _adder(shift: torch.Tensor):
    def add(act: torch.Tensor) -> torch.Tensor:
        return act + shift

    return add
