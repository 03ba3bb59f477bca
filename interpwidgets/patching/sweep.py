"""The steps every patching method shares: `prepare` checks its inputs, `Sweep.result` builds its PatchResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from interpwidgets.interventions import Component
from interpwidgets.patching.result import PatchResult, axis_labels
from interpwidgets.patching.runs import Baseline, PatchInto, check_patch_into, check_task, normalize, reads_last_position_only
from interpwidgets.patching.sites import default_granularity, get_site
from interpwidgets.tasks.metric import Metric


@dataclass(frozen=True)
class Layout:
    """A sweep's cells: the site the result reports, its axes and shape, each cell's components (row-major over
    `shape`), labels for axes other than layer / head / kv_head / position, and details for the result."""

    site: str
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    cells: list[tuple[Component, ...]]
    labels: dict[str, list[str]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sweep:
    """A patching method's checked inputs. `last_position_only`: the metric reads the last position's logits alone."""

    model: Any
    task: Any
    layout: Layout
    patch_into: PatchInto
    metric: Metric
    last_position_only: bool
    normalize: bool

    @property
    def hooks(self) -> list[str]:
        """The hooks the cells patch, in order (for a site: one per layer)."""
        return list(dict.fromkeys(c.hook_name for cell in self.layout.cells for c in cell))

    def result(self, values: torch.Tensor, baseline: Baseline, *, method: str, **details: Any) -> PatchResult:
        """The PatchResult of the raw metric after patching each cell, `values` [n_cells] in cell order."""
        layout = self.layout
        values = values.view(layout.shape)
        return PatchResult(
            values=normalize(values, baseline) if self.normalize else values,
            axes=layout.axes,
            labels={**axis_labels(self.model, self.task, layout.axes), **layout.labels},
            site=layout.site,
            method=method,
            patch_into=self.patch_into,
            normalized=self.normalize,
            model=self.model,
            task=self.task,
            cells=layout.cells,
            baseline=baseline,
            metric=self.metric,
            details={**layout.details, **details},
        )


def prepare(
    model,
    task,
    *,
    patch_into: PatchInto,
    metric: Metric | None,
    normalize: bool,
    site: str | None = None,
    by: str | None = None,
    layout: Layout | None = None,
) -> Sweep:
    """Check the task and `patch_into`, resolve the metric (default: the task's), and lay out the cells: `site`
    swept `by` (default: by head for per-head sites, else by position), or a ready `layout` (path patching's)."""
    check_task(model, task)
    check_patch_into(patch_into)
    if layout is None:
        found = get_site(site, model)
        by = by or default_granularity(found)
        axes, shape, components = found.cells(model, task.clean_tokens.shape[1], by)
        layout = Layout(found.name, axes, shape, [(c,) for c in components], details={"by": by})
    return Sweep(
        model=model,
        task=task,
        layout=layout,
        patch_into=patch_into,
        metric=task.metric if metric is None else metric,
        last_position_only=reads_last_position_only(task, metric),
        normalize=normalize,
    )
