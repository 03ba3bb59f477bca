"""`DirectLogitAttribution`: each component's direct effect on a logit difference, and ablations on click.

Two panels from an `iw.lens.direct_logit_attribution` result: a layer x head heatmap (mean over the prompts) and
one bar per component group (embeddings, each layer's attention (its heads + b_O) and MLP, the final biases),
with the check "sum of components = the model's logit difference". A click on a head or an MLP asks the kernel
to ablate it (`ablate {component}`) with ``result.intervene`` and the `ablation` trait ("zero" / "mean").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from traitlets import Dict, Int, List, TraitError, Unicode, validate

from interpwidgets.lens.dla import DLAResult, direct_logit_attribution
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.encoding import as_numpy, float16_array
from interpwidgets.widgets.history import Ref
from interpwidgets.widgets.messages import RequestError, check_keys, shown
from interpwidgets.widgets.outcomes import outcome_fields
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import diverging_rgb, esc, frame, heatmap_svg, legend

ABLATIONS = ("zero", "mean")
VERBS = {"zero": "zero-ablate", "mean": "mean-ablate"}
ABLATING = {"zero": "zero-ablating", "mean": "mean-ablating"}
CLICKABLE_KINDS = ("head", "mlp")
_HEAD = re.compile(r"^L(\d+)H(\d+)$")


class DirectLogitAttribution(InterpWidget):
    """Direct logit attribution: an `iw.lens.direct_logit_attribution` result, or its arguments.

    DirectLogitAttribution(iw.lens.direct_logit_attribution(model, task))
    DirectLogitAttribution(model, "When Mary and John went to the store, John gave a drink to", " Mary", " John")

    The heatmap shows each head's direct effect on `result.direction` (mean over the prompts), the bars every
    component group's. Clicking a head (which also sets the shared `selection`, so a linked AttentionPatterns
    follows) or an MLP bar applies the `ablation` ("zero" or "mean") to it in the kernel and shows the metric and
    the first prompt's top predictions before and after.
    """

    _esm = STATIC / "dla.js"
    _css = STATIC / "dla.css"
    _front_end_writable = frozenset({"ablation"})

    title = Unicode().tag(sync=True)
    direction = Unicode(read_only=True).tag(sync=True)
    units = Unicode(read_only=True).tag(sync=True)
    n_prompts = Int(read_only=True).tag(sync=True)
    #: float16 [layer, head], mean over the prompts
    heads = Dict(read_only=True).tag(sync=True)
    #: [layer][head] the component label a head cell ablates ("L1H2")
    head_labels = List(List(Unicode()), read_only=True).tag(sync=True)
    #: {"labels": [group], "values": float16 [group], "ablate": [component label, or "" where a click does nothing]}
    bars = Dict(read_only=True).tag(sync=True)
    #: {"sum": mean over prompts of the sum of all components, "logit_diff": the model's own, mean over prompts}
    totals = Dict(read_only=True).tag(sync=True)
    ablations = List(Unicode(), read_only=True).tag(sync=True)
    ablation = Unicode("zero").tag(sync=True)

    def __init__(
        self,
        source: DLAResult | Any,
        task_or_prompt: Any = None,
        answer: str | int | None = None,
        wrong: str | int | None = None,
        *,
        ablation: str = "zero",
        title: str | None = None,
        selection: Selection | None = None,
    ) -> None:
        if isinstance(source, DLAResult):
            if any(x is not None for x in (task_or_prompt, answer, wrong)):
                raise ValueError("a DLAResult comes with its prompts and direction; pass nothing else with it.")
            result = source
        elif task_or_prompt is None:
            raise ValueError("DirectLogitAttribution needs an iw.lens.direct_logit_attribution result, "
                             "or a model and a task (or a prompt with answer= and wrong=).")
        else:
            result = direct_logit_attribution(source, task_or_prompt, answer, wrong)
        self.result = result
        self.last_outcome: Any = None
        values = as_numpy(result.values)
        labels, kinds = [str(label) for label in result.labels], [str(kind) for kind in result.kinds]
        if values.ndim != 2 or values.shape[1] != len(labels) or len(kinds) != len(labels):
            raise ValueError(f"result.values has shape {values.shape} for {len(labels)} labels and {len(kinds)} kinds.")
        self._heads = as_numpy(result.heads)
        self._labels, self._kinds = labels, kinds
        self._bar_labels, self._bar_values, self._bar_ablate = _bars(labels, kinds, values.mean(0))
        super().__init__(selection=selection)
        self.set_trait("direction", str(result.direction))
        self.set_trait("units", f"direct effect on {result.direction}")
        self.set_trait("n_prompts", int(values.shape[0]))
        self.set_trait("heads", float16_array(self._heads))
        self.set_trait("head_labels", _head_labels(labels, kinds, *self._heads.shape))
        self.set_trait("bars", {"labels": self._bar_labels, "values": float16_array(self._bar_values),
                                "ablate": self._bar_ablate})
        self.set_trait("totals", {"sum": float(values.sum(1).mean()), "logit_diff": float(as_numpy(result.logit_diff).mean())})
        self.set_trait("ablations", list(ABLATIONS))
        self.ablation = ablation
        self.title = title or f"Direct logit attribution \u00b7 {result.direction}"
        self._clickable = {label for label, kind in zip(labels, kinds) if kind in CLICKABLE_KINDS}

    @validate("ablation")
    def _check_ablation(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in ABLATIONS:
            raise TraitError(f"ablation must be one of {list(ABLATIONS)}, got {proposal['value']!r}")
        return proposal["value"]

    @handles("ablate")
    def _ablate(self, params: dict[str, Any]) -> dict[str, Any]:
        """{component: "L1H2" or "mlp1"} -> the `ablation` trait's outcome: the metric and top predictions before/after."""
        check_keys(params, {"component"})
        component = params.get("component")
        if not isinstance(component, str) or component not in self._clickable:
            example = ", ".join(sorted(self._clickable)[:3])
            raise RequestError(f"component must be a head or an MLP of this result (e.g. {example}), got {shown(component)}")
        ablation = self.ablation
        outcome = self.result.intervene([component], ablation=ablation)
        fields = outcome_fields(outcome)
        self.last_outcome = outcome
        step = self.record(
            f"{VERBS[ablation]} {component}", "{result}.intervene({components}, ablation={ablation})",
            {"metric_before": fields["metric_before"], "metric_after": fields["metric_after"]},
            result=Ref(self.result, "result", "the DLAResult this widget shows"), components=[component], ablation=ablation,
        )
        return {
            "component": component,
            "ablation": ablation,
            "metric": f"{self.direction}, mean over {self.n_prompts} prompt{'s' if self.n_prompts != 1 else ''}",
            "before_title": "top predictions (first prompt)",
            "after_title": f"after {ABLATING[ablation]} (first prompt)",
            **fields,
            "code": step.snippet,
        }

    def _static_html(self) -> str:
        heads = self._heads
        finite = heads[np.isfinite(heads)]
        abs_max = float(np.abs(finite).max()) if finite.size else 1.0
        rows = [f"L{layer}" for layer in range(heads.shape[0])]
        cols = [f"H{head}" for head in range(heads.shape[1])]
        svg = heatmap_svg(diverging_rgb(heads, abs_max), rows, cols)
        bar_max = float(np.abs(self._bar_values).max()) or 1.0
        bars = "".join(_bar_html(label, value, bar_max) for label, value in zip(self._bar_labels, self._bar_values))
        totals = self.totals
        check = (f"sum of components = {totals['sum']:.4g} = the model's logit difference {totals['logit_diff']:.4g} "
                 f"(mean over {self.n_prompts} prompt{'s' if self.n_prompts != 1 else ''})")
        body = (
            f'<div style="display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start">'
            f"<div><div>heads: rows layer, columns head</div><div>{svg}</div>"
            f"{legend('diverging', -abs_max, abs_max, self.units)}</div>"
            f'<div style="font-size:11px;font-variant-numeric:tabular-nums">{bars}</div></div>'
            f"<div style=\"margin-top:6px\">{esc(check)}</div>"
        )
        return frame(self.title, body)


def _layer_of(label: str) -> int | None:
    """The layer a component label names (its first number: "L3H1", "mlp3", "b_O3" -> 3), None for none."""
    match = re.search(r"(\d+)", label)
    return int(match[1]) if match else None


def _bars(labels: Sequence[str], kinds: Sequence[str], mean: np.ndarray) -> tuple[list[str], np.ndarray, list[str]]:
    """One bar per group, in the residual stream's order: embed, pos_embed, attn L (heads + b_O) and mlp L, bias."""
    groups: dict[str, float] = {}
    ablate: dict[str, str] = {}
    for label, kind, value in zip(labels, kinds, mean.tolist()):
        if kind in ("head", "attn_bias"):
            group = f"attn{_layer_of(label)}"
        elif kind == "mlp":
            group = f"mlp{_layer_of(label)}"
            ablate[group] = label
        else:
            group = label
        groups[group] = groups.get(group, 0.0) + value
    names = list(groups)
    return names, np.array([groups[name] for name in names], np.float32), [ablate.get(name, "") for name in names]


def _head_labels(labels: Sequence[str], kinds: Sequence[str], n_layers: int, n_heads: int) -> list[list[str]]:
    table = [[f"L{layer}H{head}" for head in range(n_heads)] for layer in range(n_layers)]
    for label, kind in zip(labels, kinds):
        match = _HEAD.match(label) if kind == "head" else None
        if match and int(match[1]) < n_layers and int(match[2]) < n_heads:
            table[int(match[1])][int(match[2])] = label
    return table


def _bar_html(label: str, value: float, top: float) -> str:
    width = abs(value) / top * 60
    side = f"margin-left:60px;width:{width:.1f}px;background:rgb(25,118,210)" if value >= 0 else (
        f"margin-left:{60 - width:.1f}px;width:{width:.1f}px;background:rgb(211,47,47)")
    return (
        f'<div style="display:grid;grid-template-columns:64px 124px 56px;gap:4px;align-items:center">'
        f"<span>{esc(label)}</span><div style=\"height:8px\"><div style=\"height:8px;{side}\"></div></div>"
        f'<span style="text-align:right">{esc(f"{value:.3g}")}</span></div>'
    )
