"""`PatchHeatmap`: a patching result as a heatmap whose cells run interventions in the kernel.

Any `PatchResult` draws the same way (activation patching over layer x position, layer x head,
layer x head x position; path-patching sweeps over senders): the last axis runs along the columns, the
others along the rows. A click on a cell asks the kernel to apply the `action` trait to it with
``result.intervene`` and the widget shows the metric before and after with the first prompt's top
predictions; shift-click selects several cells for one action.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from traitlets import Dict, Int, List, TraitError, Unicode, validate

from interpwidgets.models.tokens import token_strings
from interpwidgets.patching.labels import title_of, units_of
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.encoding import as_numpy, float16_array
from interpwidgets.widgets.history import Ref
from interpwidgets.widgets.messages import check_keys, get_indices
from interpwidgets.widgets.outcomes import outcome_fields
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import diverging_rgb, esc, frame, heatmap_svg, legend

ABLATION_OF = {"zero": "zero", "mean": "mean", "patch": None}
"""Each action's `PatchResult.intervene(ablation=...)`: "patch" patches the cells as the sweep did."""
MAX_CELLS = 16
PROMPT_TAIL = 12
"""How many of the first prompt's last tokens the outcome panel shows."""


class PatchHeatmap(InterpWidget):
    """Draws `result` (a `PatchResult`); clicking a cell applies `action` ("zero", "mean" or "patch") to it.

    PatchHeatmap(iw.patching.activation_patch(model, task, site="z"), action="mean")

    "zero" / "mean" ablate the cell's components on the clean prompts; "patch" patches them as the sweep
    did. The widget shows the task metric before and after, and the first prompt's top predictions.
    `action` is the one place the choice lives: the menu writes it, Python may set it.
    """

    _esm = STATIC / "patch_heatmap.js"
    _css = STATIC / "patch_heatmap.css"
    _front_end_writable = frozenset({"action"})

    values = Dict(read_only=True).tag(sync=True)
    axes = List(Unicode(), read_only=True).tag(sync=True)
    labels = List(List(Unicode()), read_only=True).tag(sync=True)
    units = Unicode(read_only=True).tag(sync=True)
    title = Unicode().tag(sync=True)
    #: action -> {"label": its menu entry, "before" / "after": the prediction headings, "metric": the metric line,
    #: "prompt": the first prompt of the run it acts on, "hint": what a click does}
    actions = Dict(read_only=True).tag(sync=True)
    #: run ("clean" / "corrupt") -> its first prompt's last tokens, the prompt the predictions are for
    prompts = Dict(read_only=True).tag(sync=True)
    action = Unicode("zero").tag(sync=True)
    max_cells = Int(MAX_CELLS, read_only=True).tag(sync=True)

    def __init__(
        self,
        result: Any,
        *,
        action: str = "zero",
        title: str | None = None,
        units: str | None = None,
        selection: Selection | None = None,
    ) -> None:
        self.result = result
        values = as_numpy(result.values)
        axes = [str(axis) for axis in result.axes]
        if values.ndim != len(axes) or values.ndim == 0:
            raise ValueError(f"result.values has shape {values.shape} but result.axes is {tuple(axes)}.")
        labels = [[str(label) for label in result.labels[axis]] for axis in axes]
        for axis, size, names in zip(axes, values.shape, labels):
            if len(names) != size:
                raise ValueError(f"axis {axis!r} has {size} entries but {len(names)} labels.")
        self._values = values
        super().__init__(selection=selection)
        self.set_trait("values", float16_array(values))
        self.set_trait("axes", axes)
        self.set_trait("labels", labels)
        self.set_trait("units", units or units_of(result))
        self.set_trait("prompts", first_prompts(result))
        self.set_trait("actions", action_texts(result, self.prompts))
        self.action = action
        self.title = title or title_of(result)

    @validate("action")
    def _check_action(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in ABLATION_OF:
            raise TraitError(f"action must be one of {list(ABLATION_OF)}, got {proposal['value']!r}")
        return proposal["value"]

    @handles("intervene")
    def _intervene(self, params: dict[str, Any]) -> dict[str, Any]:
        """{cells: [[i, j, ...], ...]} -> the `action` trait's outcome: the metric before/after and the top predictions."""
        check_keys(params, {"cells"})
        cells = get_indices(params, "cells", self._values.shape, self.max_cells)
        action = self.action
        outcome = self.result.intervene(cells, ablation=ABLATION_OF[action])
        fields = outcome_fields(outcome)
        step = self.record(
            f"{self.actions[action]['label']} {fields['description']}",
            "{result}.intervene({cells}, ablation={ablation})",
            {"metric_before": fields["metric_before"], "metric_after": fields["metric_after"]},
            result=Ref(self.result, "result", f"the {type(self.result).__name__} this widget shows"),
            cells=cells, ablation=ABLATION_OF[action],
        )
        return {
            "cells": [list(cell) for cell in cells],
            "action": action,
            **fields,
            "code": step.snippet,
        }

    def _static_html(self) -> str:
        values = self._values.reshape(-1, self._values.shape[-1])
        finite = values[np.isfinite(values)]
        abs_max = float(np.abs(finite).max()) if finite.size else 1.0
        rows = [" ".join(parts) for parts in _row_label_parts(self.labels[:-1], self._values.shape[:-1])]
        row_axes = " \u00d7 ".join(self.axes[:-1]) or "\u2014"
        caption = f"rows: {row_axes} \u00b7 columns: {self.axes[-1]}"
        svg = heatmap_svg(diverging_rgb(values, abs_max), rows, self.labels[-1])
        return frame(self.title, f"<div>{esc(caption)}</div>{svg}{legend('diverging', -abs_max, abs_max, self.units)}")


def first_prompts(result: Any) -> dict[str, str]:
    """Each run's first prompt as its last `PROMPT_TAIL` tokens ("\u2026" in front when there are more)."""
    shown = {}
    for run in ("clean", "corrupt"):
        strings = token_strings(result.model, getattr(result.task, f"{run}_tokens")[0].tolist())
        shown[run] = ("\u2026" if len(strings) > PROMPT_TAIL else "") + "".join(strings[-PROMPT_TAIL:])
    return shown


def action_texts(result: Any, prompts: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each action's menu label and outcome headings, naming the run it acts on (`result.base_of`) and its first
    prompt (`prompts`, from `first_prompts`): the predictions listed are that prompt's."""
    patch = f"{result.source} into {result.patch_into}"
    verbs = {"zero": ("zero-ablate", "zero-ablated", "zero-ablate it on the clean prompts"),
             "mean": ("mean-ablate", "mean-ablated", "mean-ablate it on the clean prompts (its mean over the corrupt ones)"),
             "patch": (f"patch {patch}", f"{result.source} patched in", f"patch it {patch}")}
    texts = {}
    for action, ablation in ABLATION_OF.items():
        run = result.base_of(ablation)
        label, done, click = verbs[action]
        texts[action] = {
            "label": label,
            "before": f"{run} run: top predictions",
            "after": f"{run} run, {done}",
            "metric": f"metric on the {run} prompts",
            "prompt": f"predictions for the first {run} prompt: {prompts[run]}",
            "hint": f"click a cell: {click}",
        }
    return texts


def _row_label_parts(labels: list[list[str]], shape: tuple[int, ...]) -> list[list[str]]:
    return [[labels[axis][i] for axis, i in enumerate(index)] for index in np.ndindex(*shape)] if shape else [[]]
