"""Activation patching: patch one site's activation from one run into the other, cell by cell."""

from __future__ import annotations

from typing import Literal

import torch

from interpwidgets.patching.result import PatchResult, axis_labels
from interpwidgets.patching.runs import Metric, check_direction, check_task, normalise, resolve_metric, run_baseline
from interpwidgets.patching.sites import default_granularity, get_site
from interpwidgets.patching.stacking import copy_from, sweep

Direction = Literal["denoising", "noising"]


def activation_patch(
    model,
    task,
    site: str = "resid_pre",
    by: str | None = None,
    direction: Direction = "denoising",
    normalize: bool = True,
    metric: Metric | None = None,
    batch_budget_mb: float | None = None,
    progress: bool = True,
) -> PatchResult:
    """Patch `site` cell by cell and record the metric of each patched run.

    site: resid_pre, resid_mid, resid_post, attn_out, mlp_out, or a per-head site z, q, k, v, pattern.
    by: "position" (layer x position, default for residual-like sites), "layer" (all positions),
      "head" (layer x head over all positions, default for per-head sites) or "head_position"
      (layer x head x position; for `pattern` the destination position).
    direction: "denoising" patches clean activations into the corrupt run; "noising" corrupt into clean.
    normalize: report (metric - corrupt) / (clean - corrupt), so 0 = corrupt and 1 = clean; else raw.
    metric: logits [batch, seq, vocab] -> scalar; default the task's mean logit difference.
    batch_budget_mb: memory for each stacked forward (default 1 GiB on CPU, half the free GPU memory).
    Cells whose clean and corrupt activations are equal are not run (their value is the base run's).

    Returns a PatchResult whose values have shape [n_layers, seq], [n_layers], [n_layers, n_heads]
    or [n_layers, n_heads, seq]. Many patch runs share each forward (stacked along the batch).
    """
    site_ = get_site(site, model)
    by = by or default_granularity(site_)
    check_task(model, task)
    check_direction(direction)
    metric = resolve_metric(task, metric)
    cfg = model.cfg
    axes, shape, cells = site_.cells(cfg.n_layers, cfg.n_heads, task.clean_tokens.shape[1], by)
    baseline = run_baseline(model, task, metric, [site_.hook_name(layer) for layer in range(cfg.n_layers)])
    base, unpatched, source = baseline.base_and_source(direction)
    # a cell whose source and base activations are equal (e.g. positions before the first differing
    # token) cannot change the run: its value is the base metric, no forward needed
    todo = [i for i, c in enumerate(cells) if not torch.equal(c.select(source[c.hook_name]), c.select(unpatched[c.hook_name]))]
    groups = [cells[i].edits(model, copy_from(cells[i], source[cells[i].hook_name])) for i in todo]
    values = torch.full((len(cells),), getattr(baseline, f"{base}_metric"))
    values[todo] = sweep(
        model, getattr(task, f"{base}_tokens"), groups, metric, batch_budget_mb, f"patching {site_.name} by {by}", progress
    )
    values = values.view(shape)
    return PatchResult(
        values=normalise(values, baseline) if normalize else values,
        axes=axes,
        labels=axis_labels(model, task, axes),
        site=site_.name,
        method="activation",
        direction=direction,
        normalized=normalize,
        model=model,
        task=task,
        cells=[(cell,) for cell in cells],
        baseline=baseline,
        metric=metric,
        details={"by": by},
    )
