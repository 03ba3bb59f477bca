"""`PatchResult`: a patching sweep's values with labelled axes, plotting, and re-running any cell."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from interpwidgets.interventions import Component, ablate, patch
from interpwidgets.interventions.components import kv_group, kv_heads
from interpwidgets.models.device import device_of
from interpwidgets.models.tokens import has_tokenizer, token_strings, top_tokens
from interpwidgets.patching.runs import Baseline, PatchInto, source_of
from interpwidgets.tasks.metric import check_metric

Cell = tuple[int, ...]
Ablation = Literal["zero", "mean"]
CELL_ABLATIONS: tuple[Ablation, ...] = ("zero", "mean")


@dataclass
class Outcome:
    """What `PatchResult.intervene` did: the metric and the first prompt's top-5 next tokens
    ((token, probability) pairs) before and after acting on `components` on the `base` run's prompts
    ("clean" or "corrupt"); `ablation` is None where the components were patched from the other run."""

    ablation: Ablation | None
    components: list[str]
    base: PatchInto
    metric_before: float
    metric_after: float
    top_before: list[tuple[str, float]]
    top_after: list[tuple[str, float]]


@dataclass
class PatchResult:
    """A patching sweep.

    values: tensor with one entry per cell, shape given by `axes` (e.g. ("layer", "position") ->
      [n_layers, seq]); entries are the metric after patching that cell, normalized so 0 = corrupt
      run and 1 = clean run when `normalized`. NaN marks cells that were not measured.
    labels: axis -> one string per index ("L0", "H1", "5: ' Mary'", ...).
    site, method ("activation", "path", "attribution-atp", "attribution-ig"), patch_into (the run patched:
      "corrupt", with clean activations patched in, or "clean"), model and task: what was run.
    cells: the components each cell patched (row-major order); baseline: the unpatched runs.
    """

    values: torch.Tensor
    axes: tuple[str, ...]
    labels: dict[str, list[str]]
    site: str
    method: str
    patch_into: PatchInto
    normalized: bool
    model: Any = field(repr=False)
    task: Any = field(repr=False)
    cells: list[tuple[Component, ...]] = field(repr=False)
    baseline: Baseline = field(repr=False)
    metric: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    details: dict = field(default_factory=dict)

    @property
    def clean_metric(self) -> float:
        return self.baseline.clean_metric

    @property
    def corrupt_metric(self) -> float:
        return self.baseline.corrupt_metric

    @property
    def source(self) -> PatchInto:
        """The run whose activations were patched in (the one `patch_into` does not name)."""
        return source_of(self.patch_into)

    def base_of(self, ablation: Ablation | None) -> PatchInto:
        """The run `intervene(..., ablation=ablation)` acts on: `patch_into` for a patch, "clean" for an ablation."""
        return self.patch_into if ablation is None else "clean"

    def _flat(self, index: Cell | int) -> int:
        index = (index,) if isinstance(index, int) else tuple(index)
        shape = tuple(self.values.shape)
        if len(index) != len(shape) or any(not 0 <= i < n for i, n in zip(index, shape)):
            raise IndexError(f"Cell {index} is not in a result of shape {shape} (axes {self.axes}).")
        return int(np.ravel_multi_index(index, shape))

    def components(self, index: Cell | int) -> tuple[Component, ...]:
        """The components the cell at `index` (one int per axis) patched."""
        return self.cells[self._flat(index)]

    def component(self, index: Cell | int) -> Component:
        """The component the cell at `index` refers to (for cells patching a set, use `components`)."""
        found = self.components(index)
        if len(found) != 1:
            raise ValueError(f"Cell {index} patches {len(found)} components together; use .components(index).")
        return found[0]

    def to_dataframe(self):
        """A long pandas DataFrame: one row per cell, one column per axis (index), `<axis>_label`, `component`, `value`."""
        import pandas as pd

        grid = np.indices(tuple(self.values.shape)).reshape(len(self.axes), -1)
        columns: dict[str, Any] = {}
        for axis, indices in zip(self.axes, grid):
            columns[axis] = indices
            columns[f"{axis}_label"] = [self.labels[axis][i] for i in indices]
        columns["component"] = ["+".join(c.label for c in cell) for cell in self.cells]
        columns["value"] = self.values.detach().float().cpu().reshape(-1).numpy()
        return pd.DataFrame(columns)

    def plot(self, ax=None, title: str | None = None, *, limit: float | None = None):
        """A heatmap with labelled axes and a diverging colour map centred on zero; returns the Axes.

        Titled with the method, the site (and receivers), the direction and, on a second line, the units and
        normalisation; `title` replaces the first line. limit: the colour scale spans [-limit, limit] (default
        the largest |value|); pass one limit to every panel compared side by side so their colours mean the same.
        """
        import textwrap

        import matplotlib.pyplot as plt

        from interpwidgets.patching.labels import title_of, units_of

        if limit is not None and not (isinstance(limit, (int, float)) and np.isfinite(limit) and limit > 0):
            raise ValueError(f"limit must be a positive number (the colour scale's end, |value|), got {limit!r}.")
        values = self.values.detach().float().cpu().numpy()
        if values.ndim == 1:
            values, rows, columns = values[None, :], [""], self.labels[self.axes[0]]
            ylabel, xlabel = "", self.axes[0]
        else:
            first = [self.labels[a] for a in self.axes[:-1]]
            rows = [" ".join(parts) for parts in np.array(np.meshgrid(*first, indexing="ij")).reshape(len(first), -1).T]
            values = values.reshape(len(rows), -1)
            columns, ylabel, xlabel = self.labels[self.axes[-1]], " x ".join(self.axes[:-1]), self.axes[-1]
        if ax is None:
            _, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(columns) + 2), max(2.5, 0.3 * len(rows) + 1.5)))
        if limit is None:
            limit = (float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0) or 1.0
        image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(columns)), columns, rotation=90 if xlabel == "position" else 0)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        units = units_of(self)
        ax.figure.colorbar(image, ax=ax, label=units.replace(" (", "\n("))
        first_line = title or title_of(self).removesuffix(f" \u00b7 {units}")
        width_in = ax.get_position().width * ax.figure.get_figwidth()  # wrap to the panel: about 5.5 pt a character
        fill = max(24, int(width_in * 72 / 5.5))
        units_lines = units.replace(" (", "\n(") if len(units) > fill else units  # "(0 = corrupt, 1 = clean)" kept whole
        ax.set_title(f"{textwrap.fill(first_line, fill)}\n{units_lines}", fontsize=10)
        return ax

    def intervene(self, cells: Sequence[Cell] | Cell, *, ablation: Ablation | None = None) -> Outcome:
        """Act on the components of `cells` together, in one forward of the task's prompts.

        ablation None: patch them as the sweep did (the source run's activations into the `patch_into` run).
        "zero" / "mean": ablate them on the clean prompts ("mean": their mean over the corrupt prompts,
        position by position).
        """
        if isinstance(cells, tuple) and all(isinstance(i, int) for i in cells):
            cells = [cells]
        components = list(dict.fromkeys(c for cell in cells for c in self.components(cell)))
        if not components:
            raise ValueError("No cells given; pass a list of index tuples such as [(1, 2)].")
        base = self.base_of(ablation)
        if ablation is None:
            intervention = patch(self.model, components, self.baseline.base_and_source(base)[1])
        elif ablation in CELL_ABLATIONS:
            intervention = ablate(
                self.model, components, ablation=ablation, reference=self.baseline.corrupt if ablation == "mean" else None
            )
        else:
            raise ValueError(f"ablation must be None (patch as the sweep did) or one of {CELL_ABLATIONS}, got {ablation!r}.")
        tokens = getattr(self.task, f"{base}_tokens").to(device_of(self.model))
        with torch.no_grad():
            logits = intervention.run(tokens)
        return Outcome(
            ablation=ablation,
            components=[c.label for c in components],
            base=base,
            metric_before=self.baseline.metric_of(base),
            metric_after=float(check_metric(self.metric(logits))),
            top_before=top_tokens(self.model, self.baseline.last_logits_of(base)),
            top_after=top_tokens(self.model, logits[0, -1]),
        )


def axis_labels(model, task, axes: Sequence[str]) -> dict[str, list[str]]:
    """Labels for layer ("L0"), head ("H0"), key/value head ("KV0 (H0-H1)") and position ("5: ' Mary'", from
    the first clean prompt; "5: #42" for a model without a tokenizer) axes."""
    tokens = task.clean_tokens[0].tolist()
    group = kv_group(model)
    makers = {
        "layer": lambda: [f"L{i}" for i in range(model.cfg.n_layers)],
        "head": lambda: [f"H{i}" for i in range(model.cfg.n_heads)],
        "kv_head": lambda: [f"KV{i} (H{i * group}-H{(i + 1) * group - 1})" for i in range(kv_heads(model))],
        "position": lambda: [f"{i}: {text!r}" if has_tokenizer(model) else f"{i}: {text}"
                             for i, text in enumerate(token_strings(model, tokens))],
    }
    return {axis: makers[axis]() for axis in axes if axis in makers}
