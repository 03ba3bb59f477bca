"""Activation patching: patch one site's activation from one run into the other, cell by cell.

Every stacked forward holds the clean prompts, the corrupt prompts and one copy of the patched
prompts per cell; each cell's edit copies the source rows of the same forward at that hook, so
the unpatched runs need no forward of their own, and a cell in block L joins the forward there
(blocks before L are the unpatched run's).
"""

from __future__ import annotations

import torch

from interpwidgets.interventions import Component
from interpwidgets.models.device import device_of
from interpwidgets.patching.result import PatchResult
from interpwidgets.patching.runs import Baseline, PatchInto, baseline_from, run_baseline
from interpwidgets.patching.stacking import LiveRows, chunks, groups_per_chunk, stacked_forward
from interpwidgets.patching.sweep import prepare
from interpwidgets.tasks.metric import Metric, check_metric


def activation_patch(
    model,
    task,
    *,
    site: str = "resid_pre",
    by: str | None = None,
    patch_into: PatchInto = "corrupt",
    metric: Metric | None = None,
    normalize: bool = True,
    batch_budget_mb: float | None = None,
    progress: bool | None = None,
) -> PatchResult:
    """Patch `site` cell by cell and record the metric of each patched run.

    site: resid_pre, resid_mid, resid_post, attn_out, mlp_out, or a per-head site z, q, k, v, pattern.
    by: "position" (layer x position, default for residual-like sites), "layer" (all positions),
      "head" (layer x head over all positions, default for per-head sites) or "head_position"
      (layer x head x position; for `pattern` the destination position).
    patch_into: "corrupt" runs the corrupt prompts with one clean activation patched in (denoising);
      "clean" runs the clean prompts with one corrupt activation (noising).
    metric: logits [batch, seq, vocab] -> scalar; default the task's mean logit difference.
    normalize: report (metric - corrupt) / (clean - corrupt), so 0 = corrupt and 1 = clean; else raw.
    batch_budget_mb, progress: default to `iw.config`'s.

    Returns a PatchResult whose values have shape [n_layers, seq], [n_layers], [n_layers, n_heads]
    or [n_layers, n_heads, seq]. Many patch runs share each forward (stacked along the batch).
    Cells that cannot change the run are not run (their value is the base run's metric): with
    causal attention, positions before the first token where clean and corrupt differ, and at
    blocks.0.hook_resid_pre (the embeddings) positions whose tokens agree.
    """
    sweep = prepare(model, task, site=site, by=by, patch_into=patch_into, metric=metric, normalize=normalize)
    cells = [cell for cell, in sweep.layout.cells]
    clean, corrupt = (t.to(device_of(model)) for t in (task.clean_tokens, task.corrupt_tokens))
    batch, seq = clean.shape
    causal = getattr(model.cfg, "attention_dir", "causal") == "causal"
    todo = [i for i, cell in enumerate(cells) if not (causal and _is_noop(cell, clean, corrupt))]

    base = corrupt if patch_into == "corrupt" else clean
    live = LiveRows(group=0 if patch_into == "corrupt" else 1)  # groups 0 and 1: clean and corrupt prompts
    values = torch.full((len(cells),), float("nan"))
    baseline: Baseline | None = None
    budget = groups_per_chunk(model, batch, seq, batch_budget_mb, last_position_only=sweep.last_position_only, minimum=3)
    desc = f"patching {sweep.layout.site} by {sweep.layout.details['by']}"
    with torch.no_grad():
        for part in chunks(len(todo), max(1, budget - 2), desc, progress):
            groups = [[], []] + [cells[todo[i]].edits(model, live.copier(cells[todo[i]])) for i in part]
            tokens = torch.stack([clean, corrupt] + [base] * len(part))
            logits, captured = stacked_forward(
                model, tokens, groups, capture=sweep.hooks if baseline is None else (), live=live, late_from=1 - live.group,
                last_position_only=sweep.last_position_only,
            )
            if baseline is None:
                baseline = baseline_from(sweep.metric, logits[0], logits[1], captured, batch)
            for g, i in enumerate(part, start=2):
                values[todo[i]] = float(check_metric(sweep.metric(logits[g]), where=f"metric with {cells[todo[i]].label} patched"))
    if baseline is None:  # every cell is a no-op, so no forward ran
        baseline = run_baseline(model, task, sweep.metric, sweep.hooks)
    values[sorted(set(range(len(cells))) - set(todo))] = baseline.metric_of(patch_into)
    return sweep.result(values, baseline, method="activation")


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
