"""`CircuitGraph`: a feature circuit drawn by layer and position; a click ablates a node or opens its dashboard.

Nodes and edges travel once, as arrays (int32 layer / position / feature, float16 effects and weights);
the browser lays them out (rows: layers and components in `KIND_ORDER`, embeddings at the bottom and the
metric at the top; columns: token positions) and draws edges with width by |weight| and colour by sign.

A click asks the kernel to either
- "ablate" the node (with the model, SAEs and task the circuit was built from): the engine's
  `iw.circuits.ablate_nodes` mean- or zero-ablates it with every other node clean, and the widget shows the
  metric before and after; or
- "open" the node's SAE feature: in the attached `FeatureDashboard` and in callbacks from `on_open`.
`action` and `ablation` are synced traits the menus write; the requests carry only the node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from traitlets import Enum, TraitError, Unicode, validate
from traitlets import Dict as DictTrait
from traitlets import List as ListTrait

from interpwidgets.circuits.faithfulness import ablate_nodes
from interpwidgets.circuits.graph import KIND_ORDER, Circuit, Node
from interpwidgets.models.tokens import token_strings
from interpwidgets.sae.editing import FEATURE_ABLATIONS
from interpwidgets.sae.labels import feature_label
from interpwidgets.sae.sets import SAESet
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.encoding import float16_array, int32_array
from interpwidgets.widgets.history import Ref
from interpwidgets.widgets.messages import RequestError, check_keys, shown
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import diverging_rgb, esc, frame, legend

MAX_NODES = 400
ACTION_LABELS = {"ablate": "ablate the node", "open": "open in the dashboard"}
ABLATION_LABELS = {ablation: ablation + (" (corrupt prompts)" if ablation == "mean" else "") for ablation in FEATURE_ABLATIONS}
FEATURE_CIRCUIT_COLOURS = {
    "sign": -1,
    "supports": "supports the metric (ablating it lowers the metric)",
    "opposes": "opposes the metric (ablating it raises the metric)",
    "units": "support for the metric: -(effect of patching the node to its corrupt value)",
}
"""A feature circuit's effects are the metric's change when a node takes its corrupt value: negative = supports."""
ATTRIBUTION_COLOURS = {
    "sign": 1,
    "supports": "supports the target (positive attribution)",
    "opposes": "opposes the target (negative attribution)",
    "units": "attribution to the target",
}
"""A linear graph's (or a hand-built circuit's) effects are contributions to the target: positive = supports."""


class CircuitGraph(InterpWidget):
    """Draws `circuit` (an `iw.circuits.Circuit`); clicks ablate nodes or open their features.

    CircuitGraph(circuit)                                   # view only
    CircuitGraph(circuit, model=model, saes=saes, task=task, dashboard=FeatureDashboard(model, saes))

    With `model`, `saes` and `task` (those a feature circuit was built with) a click on a node ablates it and
    shows the task metric before and after; with `dashboard` (or callbacks registered by `on_open`) a click
    opens the node's feature there. Circuits over `MAX_NODES` nodes are pruned to the largest |effect|.
    """

    _esm = STATIC / "circuit_graph.js"
    _css = STATIC / "circuit_graph.css"
    _front_end_writable = frozenset({"action", "ablation"})

    nodes = DictTrait(read_only=True).tag(sync=True)
    edges = DictTrait(read_only=True).tag(sync=True)
    title = Unicode().tag(sync=True)
    #: the click actions on offer -> their menu entries
    actions = DictTrait(read_only=True).tag(sync=True)
    action = Unicode("").tag(sync=True)
    #: the ablation choices -> their menu entries
    ablations = DictTrait(ABLATION_LABELS, read_only=True).tag(sync=True)
    ablation = Enum(FEATURE_ABLATIONS, default_value="mean").tag(sync=True)
    #: drawing order of the node kinds inside a layer (rows)
    kind_order = DictTrait(KIND_ORDER, read_only=True).tag(sync=True)
    #: how effects map to colours: support = sign * effect (node and edge colours), and the legend's words
    colours = DictTrait(read_only=True).tag(sync=True)
    #: position -> its token (repr) on the first prompt, for the column labels; empty when unknown
    tokens = ListTrait(Unicode(), read_only=True).tag(sync=True)

    def __init__(
        self,
        circuit: Circuit,
        *,
        model: Any = None,
        saes: Any = None,
        task: Any = None,
        dashboard: Any = None,
        ablation: str = "mean",
        title: str | None = None,
        selection: Selection | None = None,
    ) -> None:
        if not isinstance(circuit, Circuit):
            raise TypeError(f"CircuitGraph needs an iw.circuits.Circuit, got {type(circuit).__name__}.")
        if len(circuit.nodes) > MAX_NODES:
            circuit = circuit.prune(top_k=MAX_NODES - sum(n.kind == "metric" for n in circuit.nodes))
        given = [x is not None for x in (model, saes, task)]
        if any(given) and not all(given):
            raise ValueError("node ablation needs model=, saes= and task= together (those the circuit was built with).")
        self.circuit = circuit
        self.model, self.task, self.dashboard = model, task, dashboard
        self._given_saes = saes
        self.saes = SAESet.of(saes) if saes is not None else SAESet()
        missing = sorted({n.dictionary for n in circuit.nodes if n.dictionary is not None} - set(self.saes))
        if saes is not None and missing:
            raise ValueError(f"saes= lacks the dictionaries the circuit's nodes belong to: {missing}.")
        self._callbacks: list[Callable[[Node], Any]] = []
        super().__init__(selection=selection)
        known = self._known_saes()
        self.set_trait("nodes", _nodes_payload(circuit.nodes, [_clerp(n, known) for n in circuit.nodes]))
        self.set_trait("edges", _edges_payload(circuit))
        self.set_trait("actions", self._available_actions())
        self.set_trait("colours", colours_of(circuit))
        self.set_trait("tokens", _tokens_of(circuit, model, task))
        self.title = title or _title_of(circuit)
        self.action = next(iter(self.actions), "")
        self.ablation = ablation

    # ---- Python API
    def on_open(self, callback: Callable[[Node], Any]) -> None:
        """Calls `callback(node)` when a feature node is opened in the widget."""
        self._callbacks.append(callback)
        self.set_trait("actions", self._available_actions())
        if not self.action:
            self.action = next(iter(self.actions))

    def _known_saes(self) -> dict[str, Any]:
        """The dictionaries this widget knows by input hook: those of `saes=` and of the dashboard."""
        return {**(getattr(self.dashboard, "saes", None) or {}), **self.saes}

    def clerp(self, node: Node) -> str:
        """The feature label of a feature node whose dictionary is known ("" otherwise)."""
        return _clerp(node, self._known_saes())

    def feature_of(self, node_id: str) -> tuple[str, int]:
        """(input hook of the node's dictionary, feature index) of an SAE-feature node."""
        node = self.circuit.node(node_id)
        if not node.is_feature:
            raise ValueError(f"{node.label or node.id} is not an SAE feature (it is {node.feature or node.kind}).")
        known = self._known_saes()
        if node.dictionary not in known:
            raise ValueError(f"no dictionary reading {node.dictionary!r} is known; pass saes= or a dashboard holding it.")
        return node.dictionary, int(node.feature)

    # ---- traits
    @validate("action")
    def _check_action(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in self.actions and not (proposal["value"] == "" and not self.actions):
            raise TraitError(f"action must be one of {list(self.actions)}, got {shown(proposal['value'])}")
        return proposal["value"]

    # ---- requests from the front end
    @handles("ablate")
    def _ablate_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """{node} -> the metric before and after ablating that node (with the `ablation` trait's choice)."""
        check_keys(params, {"node"})
        node = self._node(params)
        if "ablate" not in self.actions:
            raise RequestError(self._why_no_ablation())
        try:
            result = ablate_nodes(self.model, self.saes, self.task, [node], ablation=self.ablation)
        except ValueError as error:
            raise RequestError(str(error)) from None
        step = self.record(
            f"{self.ablation}-ablate {node.label or node.id}",
            "iw.circuits.ablate_nodes({model}, {saes}, {task}, [{circuit}.node({node})], ablation={ablation})",
            {"metric_before": result.metric_clean, "metric_after": result.metric_ablated},
            model=Ref(self.model, "model", "the model the circuit was built with"),
            saes=Ref(self._given_saes, "saes", "the SAEs the circuit was built with"),
            task=Ref(self.task, "task", "the task the circuit was built with"),
            circuit=Ref(self.circuit, "circuit", "the circuit this widget draws"), node=node.id, ablation=self.ablation,
        )
        return {"node": node.id, "label": node.label or node.id, "clerp": self.clerp(node), "ablation": result.ablation,
                "metric_before": result.metric_clean, "metric_after": result.metric_ablated, "code": step.snippet}

    @handles("open")
    def _open_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """{node} -> opens the node's feature in the dashboard and callbacks."""
        check_keys(params, {"node"})
        node = self._node(params)
        if "open" not in self.actions:
            raise RequestError("no dashboard is attached; pass dashboard= or register a callback with on_open")
        try:
            hook, feature = self.feature_of(node.id)
        except ValueError as error:
            raise RequestError(str(error)) from None
        if self.dashboard is not None:
            if hook not in self.dashboard.saes:
                raise RequestError(f"the dashboard has no dictionary at {shown(hook)}")
            self.dashboard.show(feature, hook)
        for callback in self._callbacks:
            callback(node)
        code = {}
        if self.dashboard is not None:
            step = self.record(f"open {node.label or node.id} in the dashboard", "{dashboard}.show({feature}, {hook})",
                               {"hook": hook, "feature": feature}, hook=hook, feature=feature,
                               dashboard=Ref(self.dashboard, "dashboard", "the FeatureDashboard attached to this widget"))
            code = {"code": step.snippet}
        return {"node": node.id, "label": node.label or node.id, "clerp": self.clerp(node), "hook": hook, "feature": feature,
                **code}

    # ---- internals
    def _node(self, params: dict[str, Any]) -> Node:
        node_id = params.get("node")
        if not isinstance(node_id, str) or node_id not in self.circuit:
            raise RequestError(f"node must be the id of a node of this circuit, got {shown(node_id)}")
        return self.circuit.node(node_id)

    def _ablatable(self) -> bool:
        """Node ablation splits the SAE sites a feature circuit was built over (`Circuit.kinds`)."""
        return self.model is not None and bool(self.circuit.kinds)

    def _available_actions(self) -> dict[str, str]:
        names = (["ablate"] if self._ablatable() else []) + (["open"] if self.dashboard is not None or self._callbacks else [])
        return {name: ACTION_LABELS[name] for name in names}

    def _why_no_ablation(self) -> str:
        if self.model is None:
            return "node ablation needs the model, SAEs and task: CircuitGraph(circuit, model=..., saes=..., task=...)"
        return "node ablation is available for feature circuits (iw.circuits.feature_circuit), not linear graphs"

    # ---- static preview: nodes by layer (rows) with their effects
    def _static_html(self) -> str:
        nodes = self.circuit.nodes
        if not nodes:
            return frame(self.title, f"<p>{esc(self.circuit.message or 'empty circuit')}</p>")
        effects = np.array([n.effect for n in nodes], np.float32)
        abs_max = float(np.abs(effects).max()) or 1.0
        colours = diverging_rgb(self.colours["sign"] * effects, abs_max)
        colour_of = {n.id: colours[i] for i, n in enumerate(nodes)}
        rows = []
        for layer, members in sorted(self.circuit.by_layer().items(), reverse=True):
            chips = "".join(
                f'<span style="display:inline-block;margin:2px;padding:1px 5px;border-radius:8px;'
                f'background:rgb{tuple(int(c) for c in colour_of[n.id])};border:1px solid #bbb">'
                f"{esc(' '.join(filter(None, (n.label or n.id, self.clerp(n)))))} ({n.effect:+.3g})</span>"
                for n in members
            )
            rows.append(f"<div><b>layer {layer}</b> {chips}</div>")
        body = (
            f"<div>{len(self.circuit)} nodes, {len(self.circuit.edges)} edges</div>{''.join(rows)}"
            f"{legend('diverging', -abs_max, abs_max, self.colours['units'])}"
        )
        return frame(self.title, body)


def _clerp(node: Node, saes: dict[str, Any]) -> str:
    """The feature label of `node` when it is a feature of one of `saes` (by input hook), else ""."""
    if not node.is_feature or node.dictionary not in saes:
        return ""
    return feature_label(saes[node.dictionary], int(node.feature)) or ""


def _nodes_payload(nodes: list[Node], clerps: list[str]) -> dict[str, Any]:
    """Strings as lists (`clerps`: each node's feature label, "" where none); numbers as arrays (position / feature
    -1 where absent; activation NaN where absent)."""
    return {
        "ids": [n.id for n in nodes],
        "labels": [n.label or n.id for n in nodes],
        "clerps": clerps,
        "kinds": [n.kind for n in nodes],
        "places": [n.place for n in nodes],
        "features": [n.feature if isinstance(n.feature, str) else "" for n in nodes],
        "layer": int32_array([n.layer for n in nodes]),
        "position": int32_array([-1 if n.position is None else n.position for n in nodes]),
        "feature": int32_array([n.feature if n.is_feature else -1 for n in nodes]),
        "effect": float16_array(np.array([n.effect for n in nodes], np.float32)),
        "activation": float16_array(np.array([np.nan if n.activation is None else n.activation for n in nodes], np.float32)),
    }


def _edges_payload(circuit: Circuit) -> dict[str, Any]:
    index = {n.id: i for i, n in enumerate(circuit.nodes)}
    return {
        "src": int32_array([index[e.src] for e in circuit.edges]),
        "dst": int32_array([index[e.dst] for e in circuit.edges]),
        "weight": float16_array(np.array([e.weight for e in circuit.edges], np.float32)),
    }


def colours_of(circuit: Circuit) -> dict[str, Any]:
    """The colour convention of `circuit`'s effects: feature circuits' are flipped so that colour means support."""
    return dict(FEATURE_CIRCUIT_COLOURS if circuit.kinds or circuit.method in ("atp", "ig") else ATTRIBUTION_COLOURS)


def _tokens_of(circuit: Circuit, model: Any, task: Any) -> list[str]:
    """The first clean prompt's tokens (reprs) from the task, else `circuit.metadata["prompt_tokens"]`, else none."""
    if model is not None and task is not None and hasattr(task, "clean_tokens"):
        return [repr(t) for t in token_strings(model, task.clean_tokens[0].tolist())]
    given = circuit.metadata.get("prompt_tokens")
    return [repr(str(t)) for t in given] if isinstance(given, (list, tuple)) else []


def _title_of(circuit: Circuit) -> str:
    facts = [str(fact) for fact in (circuit.metadata.get("task"), circuit.method) if fact]
    return " \u00b7 ".join(["Circuit", *facts])
