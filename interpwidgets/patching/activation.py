"""Activation patching: patch one site's activation from one run into the other, cell by cell.

Every stacked forward holds the clean prompts, the corrupt prompts and one copy of the patched
prompts per cell; each cell's edit copies the source rows of the same forward at that hook, so
the unpatched runs need no forward of their own, and a cell in block L joins the forward there
(blocks before L are the unpatched run's).
"""

from __future__ import annotations

from typing import Literal

import torch

from interpwidgets.interventions import Component
from interpwidgets.models.device import device_of
from interpwidgets.patching.result import PatchResult, axis_labels
from interpwidgets.patching.runs import (
    Baseline,
    Metric,
    baseline_from,
    check_direction,
    check_task,
    normalise,
    reads_last_position_only,
    resolve_metric,
    scalar,
)
from interpwidgets.patching.sites import default_granularity, get_site
from interpwidgets.patching.stacking import LiveRows, chunks, groups_per_chunk, stacked_forward

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

    Returns a PatchResult whose values have shape [n_layers, seq], [n_layers], [n_layers, n_heads]
    or [n_layers, n_heads, seq]. Many patch runs share each forward (stacked along the batch).
    Cells that cannot change the run are not run (their value is the base run's metric): with
    causal attention, positions before the first token where clean and corrupt differ, and at
    blocks.0.hook_resid_pre (the embeddings) positions whose tokens agree.
    """
    site_ = get_site(site, model)
    by = by or default_granularity(site_)
    check_task(model, task)
    check_direction(direction)
    last_only = reads_last_position_only(task, metric)
    metric = resolve_metric(task, metric)
    cfg = model.cfg
    clean, corrupt = (t.to(device_of(model)) for t in (task.clean_tokens, task.corrupt_tokens))
    batch, seq = clean.shape
    axes, shape, cells = site_.cells(model, seq, by)
    hooks = [site_.hook_name(layer) for layer in range(cfg.n_layers)]
    causal = getattr(cfg, "attention_dir", "causal") == "causal"
    todo = [i for i, cell in enumerate(cells) if not (causal and _is_noop(cell, clean, corrupt))]

    base_name = "corrupt" if direction == "denoising" else "clean"
    base = corrupt if direction == "denoising" else clean
    live = LiveRows(group=0 if direction == "denoising" else 1)  # groups 0 and 1: clean and corrupt prompts
    values = torch.full((len(cells),), float("nan"))
    baseline: Baseline | None = None
    per_chunk = max(1, groups_per_chunk(model, batch, seq, batch_budget_mb, last_position_only=last_only) - 2)
    parts = list(chunks(len(todo), per_chunk, f"patching {site_.name} by {by}", progress)) or [range(0)]
    with torch.no_grad():
        for part in parts:
            groups = [[], []] + [cells[todo[i]].edits(model, live.copier(cells[todo[i]])) for i in part]
            tokens = torch.stack([clean, corrupt] + [base] * len(part))
            logits, captured = stacked_forward(
                model, tokens, groups, capture=hooks if baseline is None else (), live=live, late_from=1 - live.group,
                last_position_only=last_only,
            )
            if baseline is None:
                baseline = baseline_from(metric, logits[0], logits[1], captured, batch)
            for g, i in enumerate(part, start=2):
                values[todo[i]] = float(scalar(metric(logits[g])))
    values[sorted(set(range(len(cells))) - set(todo))] = getattr(baseline, f"{base_name}_metric")
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


def _is_noop(cell: Component, clean: torch.Tensor, corrupt: torch.Tensor) -> bool:
    """True when the cell's clean and corrupt activations are equal by construction (causal models):
    all its positions precede the first differing token, or it is an embedding position whose tokens agree."""
    if cell.positions is None:
        return False
    differs = (clean != corrupt).any(0)
    seq = differs.numel()
    positions = [p % seq for p in cell.positions]
    first = int(differs.nonzero()[0]) if differs.any() else seq
    if max(positions) < first:
        return True
    return cell.hook_name == "blocks.0.hook_resid_pre" and not bool(differs[positions].any())
