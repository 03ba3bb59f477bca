"""`AttributionGraphView`: an attribution graph (`iw.circuits.attribution_graph`) on a canvas, pruned live in the
browser, its faithfulness measured by the kernel; hover labels, interventions, supernodes and search.

    g = iw.circuits.attribution_graph(model, saes, "When Mary and John went to the store, John gave a drink to")
    view = AttributionGraphView(g, dashboard=iw.widgets.FeatureDashboard(model, saes))   # or iw.show(g)
    view.node_threshold = 0.7          # the sliders are these traits; the browser re-prunes and redraws
    view.pruning()                     # g.prune(view.node_threshold, view.edge_threshold): what is shown

What travels: node influence does not depend on the thresholds, the nodes kept at a node threshold are a subset of
those kept at any higher one, and edge pruning only looks at edges among kept nodes. So the kernel sends the nodes
`g.prune` keeps at `max_node_threshold` before its clean-up (with every token and logit), the edges among them, each
node's influence on the whole graph and the sum of all influence; js/lib/prune.ts then computes exactly the masks of
`g.prune(t, e)` for any t <= max_node_threshold. Numbers are binary: int32 indices, float32 weights (as the graph
holds them) and float64 influence (the pruning thresholds compare cumulative sums of it), each deflated (the edge
endpoints, in blocks by target, shrink about a hundredfold).

Requests: "faithfulness" {nodes: kept graph indices, ablation} -> `g.faithfulness` and the kernel's time;
"intervene" {node: id or supernode, mode: ablate | steer, factor, freeze_attention, constrained} -> `g.intervene`
(constrained: every layer, so only direct effects change); "open" {node} -> `dashboard.show`; "group" {name, nodes}
and "ungroup" {name} -> `g.group` / `g.ungroup` (the view draws a supernode as one node).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from traitlets import Float, TraitError, Unicode, validate
from traitlets import Dict as DictTrait
from traitlets import List as ListTrait

from interpwidgets.circuits import influence as inf
from interpwidgets.circuits.attribution_graph import AttributionGraph, Pruning
from interpwidgets.sae.labels import feature_label
from interpwidgets.sae.sets import SAESet
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.encoding import int32_array
from interpwidgets.widgets.feature_params import predictions
from interpwidgets.widgets.history import Ref
from interpwidgets.widgets.messages import RequestError, check_keys, get_choice, shown
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import esc, frame

ACTION_LABELS = {
    "select": "select (shift-click adds)",
    "open": "open in the dashboard",
    "ablate": "ablate (set to 0)",
    "steer": "steer (scale by the factor)",
}
FACTOR_LIMITS = (-20.0, 20.0)
MAX_NAME = 60
EVIDENCE_TOKENS = 3


class AttributionGraphView(InterpWidget):
    """Draws `graph` (an `iw.circuits.AttributionGraph`) pruned at the `node_threshold` / `edge_threshold` traits.

    saes: the dictionaries whose labels (clerps) and top activations the nodes show on hover (default: the
    dashboard's, else the transcoders the graph was built with). dashboard: a `FeatureDashboard` a click opens the
    node's feature in. reference: token ids `[batch, seq]` for mean ablation in the faithfulness measure (zero
    ablation otherwise). max_node_threshold: the node slider's maximum (what is sent, see the module docstring).
    """

    _esm = STATIC / "attribution_graph.js"
    _css = STATIC / "attribution_graph.css"
    _front_end_writable = frozenset({"node_threshold", "edge_threshold"})

    nodes = DictTrait(read_only=True).tag(sync=True)
    edges = DictTrait(read_only=True).tag(sync=True)
    #: sum of every node's influence on the whole graph, the pruning's denominator; counts of the whole graph
    totals = DictTrait(read_only=True).tag(sync=True)
    #: position -> its token (repr), for the column labels
    tokens = ListTrait(Unicode(), read_only=True).tag(sync=True)
    #: supernode name -> member node ids (the graph's own `supernodes`)
    supernodes = DictTrait(read_only=True).tag(sync=True)
    actions = DictTrait(read_only=True).tag(sync=True)
    ablations = ListTrait(Unicode(), read_only=True).tag(sync=True)
    limits = DictTrait(read_only=True).tag(sync=True)
    title = Unicode().tag(sync=True)
    node_threshold = Float(0.8).tag(sync=True)
    edge_threshold = Float(0.98).tag(sync=True)

    def __init__(
        self,
        graph: AttributionGraph,
        *,
        saes: Any = None,
        dashboard: Any = None,
        reference: torch.Tensor | None = None,
        max_node_threshold: float = 0.99,
        node_threshold: float = 0.8,
        edge_threshold: float = 0.98,
        title: str | None = None,
        selection: Selection | None = None,
    ) -> None:
        if not isinstance(graph, AttributionGraph):
            raise TypeError(f"AttributionGraphView needs an iw.circuits.AttributionGraph, got {type(graph).__name__}.")
        if not 0.0 < max_node_threshold <= 1.0:
            raise ValueError(f"max_node_threshold must be in (0, 1] (a fraction of the influence), got {max_node_threshold}.")
        self.graph, self.dashboard, self.reference = graph, dashboard, reference
        self.max_node_threshold = float(max_node_threshold)
        self.saes = _label_source(graph, saes, dashboard)
        self._shown: list[str] = []
        super().__init__(selection=selection)
        payload = graph_payload(graph, self.max_node_threshold, self.saes)
        self._sent = payload.pop("_sent")
        self.set_trait("nodes", payload["nodes"])
        self.set_trait("edges", payload["edges"])
        self.set_trait("totals", payload["totals"])
        self.set_trait("tokens", [repr(str(t)) for t in graph.metadata.get("prompt_tokens", [])])
        self.set_trait("actions", self._available_actions())
        self.set_trait("ablations", ["zero", "mean"] if reference is not None else ["zero"])
        self.set_trait("limits", {"node_threshold": [0.0, self.max_node_threshold], "edge_threshold": [0.0, 1.0],
                                  "factor": list(FACTOR_LIMITS), "runs": graph.linear is not None})
        self._publish_supernodes()
        self.title = title or _title_of(graph)
        self.node_threshold, self.edge_threshold = node_threshold, edge_threshold

    # ---- Python API
    def pruning(self) -> Pruning:
        """`graph.prune` at the view's thresholds: the nodes and edges the view shows."""
        return self.graph.prune(self.node_threshold, self.edge_threshold)

    @property
    def shown_nodes(self) -> list[str]:
        """The node ids the browser last reported shown (with its last faithfulness request)."""
        return list(self._shown)

    # ---- traits
    @validate("node_threshold")
    def _check_node_threshold(self, proposal: dict[str, Any]) -> float:
        return _fraction(proposal["value"], "node_threshold", self.max_node_threshold,
                         " (the view was made with max_node_threshold=" f"{self.max_node_threshold}; pass a larger one to go higher)")

    @validate("edge_threshold")
    def _check_edge_threshold(self, proposal: dict[str, Any]) -> float:
        return _fraction(proposal["value"], "edge_threshold", 1.0, "")

    # ---- requests from the front end
    @handles("faithfulness")
    def _faithfulness(self, params: dict[str, Any]) -> dict[str, Any]:
        """{nodes: graph indices of the shown nodes, ablation} -> faithfulness and completeness by real ablation."""
        check_keys(params, {"nodes", "ablation"})
        self._require_runs("faithfulness")
        ablation = get_choice(params, "ablation", self.ablations)
        ids = [self.graph.nodes[i].id for i in self._node_indices(params, "nodes")]
        start = time.perf_counter()
        result = self.graph.faithfulness(ids, ablation=ablation, reference=self.reference if ablation == "mean" else None)
        ms = (time.perf_counter() - start) * 1000
        self._shown = ids
        values = {k: getattr(result, k) for k in ("faithfulness", "completeness", "m_model", "m_kept", "m_complement", "m_empty")}
        if not all(math.isfinite(v) for v in values.values()):
            raise RequestError(f"the ablation gave a non-finite measure ({shown(values)}): the graph's targets do not "
                               "change between the model and the empty circuit")
        step = self.record(
            f"faithfulness of {len(ids)} nodes ({ablation} ablation)",
            "{graph}.faithfulness({graph}.prune({node_threshold}, {edge_threshold}), ablation={ablation}"
            + (", reference={reference})" if ablation == "mean" else ")"),
            values, graph=Ref(self.graph, "graph", "the AttributionGraph this widget shows"),
            node_threshold=self.node_threshold, edge_threshold=self.edge_threshold, ablation=ablation,
            **({"reference": Ref(self.reference, "reference", "the reference tokens of the mean ablation")}
               if ablation == "mean" else {}))
        return {**values, "n_nodes": len(ids), "n_ablatable": result.n_nodes, "ablation": ablation, "ms": ms,
                "code": step.snippet}

    @handles("intervene")
    def _intervene(self, params: dict[str, Any]) -> dict[str, Any]:
        """{node, mode: ablate | steer, factor, freeze_attention, constrained} -> targets and top tokens before and after."""
        check_keys(params, {"node", "mode", "factor", "freeze_attention", "constrained"})
        self._require_runs("interventions")
        name = self._node_or_supernode(params)
        mode = get_choice(params, "mode", ("ablate", "steer"))
        factor = _get_float(params, "factor", *FACTOR_LIMITS) if mode == "steer" else 0.0
        freeze = _get_bool(params, "freeze_attention")
        constrained = _get_bool(params, "constrained")
        layers = list(range(int(self.graph.metadata.get("n_layers", self.graph.linear.n_layers)))) if constrained else None
        value, relative = (factor, True) if mode == "steer" else (0.0, False)
        try:
            result = self.graph.intervene({name: value}, relative=relative, freeze_attention=freeze, constrained_layers=layers)
        except ValueError as error:
            raise RequestError(str(error)) from None
        targets = [{"id": node.id, "label": node.label or node.id, "before": result.targets_before[node.id],
                    "after": result.targets_after[node.id]} for node in self.graph.logit_nodes]
        if not all(math.isfinite(t["before"]) and math.isfinite(t["after"]) for t in targets):
            raise RequestError("the intervention gave non-finite logits; try a smaller steering factor")
        label = name if name in self.graph.supernodes else (self.graph.node(name).label or name)
        action = "ablated" if mode == "ablate" else f"steered \u00d7{factor:g}"
        step = self.record(
            f"{action} {label}",
            "{graph}.intervene({{{name}: {value}}}, relative={relative}, freeze_attention={freeze}, "
            "constrained_layers={layers})",
            {"targets_after": result.targets_after}, graph=Ref(self.graph, "graph", "the AttributionGraph this widget shows"),
            name=name, value=value, relative=relative, freeze=freeze, layers=layers)
        return {"node": name, "label": label, "mode": mode, "factor": factor, "freeze_attention": freeze,
                "constrained": constrained, "set": len(result.values), "targets": targets,
                "top_before": predictions(result.top_before), "top_after": predictions(result.top_after),
                "code": step.snippet}

    @handles("open")
    def _open(self, params: dict[str, Any]) -> dict[str, Any]:
        """{node} -> shows the node's feature in the attached dashboard."""
        check_keys(params, {"node"})
        if self.dashboard is None:
            raise RequestError("no dashboard is attached: AttributionGraphView(graph, dashboard=FeatureDashboard(model, saes))")
        node = self.graph.node(self._node_id(params))
        if node.dictionary is None or not isinstance(node.feature, int):
            raise RequestError(f"{node.label or node.id} is not a dictionary feature, so it has no dashboard")
        if node.dictionary not in self.dashboard.saes:
            raise RequestError(f"the dashboard has no dictionary at {shown(node.dictionary)}")
        self.dashboard.show(node.feature, node.dictionary)
        step = self.record(f"open {node.label or node.id} in the dashboard", "{dashboard}.show({feature}, {hook})",
                           {"hook": node.dictionary, "feature": node.feature}, feature=node.feature, hook=node.dictionary,
                           dashboard=Ref(self.dashboard, "dashboard", "the FeatureDashboard attached to this widget"))
        return {"node": node.id, "label": node.label or node.id, "hook": node.dictionary, "feature": node.feature,
                "code": step.snippet}

    @handles("group")
    def _group(self, params: dict[str, Any]) -> dict[str, Any]:
        """{name, nodes: graph indices} -> a supernode of those nodes, kept in `graph.supernodes`."""
        check_keys(params, {"name", "nodes"})
        name = params.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise RequestError(f"name must be a non-empty text of at most {MAX_NAME} characters, got {shown(name)}")
        name = name.strip()
        if name in self.graph.supernodes:
            raise RequestError(f"a supernode named {shown(name)} exists already: ungroup it or choose another name")
        ids = [self.graph.nodes[i].id for i in self._node_indices(params, "nodes")]
        taken = {m: s for s, members in self.graph.supernodes.items() for m in members}
        clash = sorted({taken[i] for i in ids if i in taken})
        if clash:
            raise RequestError(f"some of these nodes belong to the supernode(s) {shown(clash)} already: ungroup those first")
        try:
            members = self.graph.group(name, ids)
        except ValueError as error:
            raise RequestError(str(error)) from None
        self._publish_supernodes()
        step = self.record(f"group {len(members)} nodes as {name}", "{graph}.group({name}, {members})", {"members": members},
                           graph=Ref(self.graph, "graph", "the AttributionGraph this widget shows"), name=name, members=members)
        return {"name": name, "members": members, "code": step.snippet}

    @handles("ungroup")
    def _ungroup(self, params: dict[str, Any]) -> dict[str, Any]:
        """{name} -> removes the supernode (its members stay nodes of the graph)."""
        check_keys(params, {"name"})
        name = params.get("name")
        if not isinstance(name, str) or name not in self.graph.supernodes:
            raise RequestError(f"name must be one of the supernodes {sorted(self.graph.supernodes)}, got {shown(name)}")
        self.graph.ungroup(name)
        self._publish_supernodes()
        step = self.record(f"ungroup {name}", "{graph}.ungroup({name})", {},
                           graph=Ref(self.graph, "graph", "the AttributionGraph this widget shows"), name=name)
        return {"name": name, "code": step.snippet}

    # ---- internals
    def _available_actions(self) -> dict[str, str]:
        names = ["select"] + (["open"] if self.dashboard is not None else [])
        names += ["ablate", "steer"] if self.graph.linear is not None else []
        return {name: ACTION_LABELS[name] for name in names}

    def _publish_supernodes(self) -> None:
        self.set_trait("supernodes", {name: list(members) for name, members in self.graph.supernodes.items()})

    def _require_runs(self, what: str) -> None:
        if self.graph.linear is None:
            raise RequestError(f"{what} need the model, and this graph was read from a file: rebuild it with "
                               "iw.circuits.attribution_graph(model, saes, prompt)")

    def _node_indices(self, params: Mapping[str, Any], name: str) -> list[int]:
        """params[name] as distinct indices of sent nodes (1 to all of them)."""
        value = params.get(name)
        if not isinstance(value, list) or not 0 < len(value) <= len(self._sent):
            raise RequestError(f"{name} must be a list of 1 to {len(self._sent)} node indices, got {shown(value)}")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            raise RequestError(f"{name} must hold integer node indices, got {shown(value)}")
        outside = [i for i in value if i not in self._sent]
        if outside:
            raise RequestError(f"{name}: {shown(outside)} are not indices of nodes this view shows")
        if len(set(value)) != len(value):
            raise RequestError(f"{name} repeats node indices")
        return list(value)

    def _node_id(self, params: Mapping[str, Any]) -> str:
        node = params.get("node")
        if not isinstance(node, str) or node not in self.graph._index:
            raise RequestError(f"node must be the id of a node of this graph, got {shown(node)}")
        return node

    def _node_or_supernode(self, params: Mapping[str, Any]) -> str:
        node = params.get("node")
        if isinstance(node, str) and node in self.graph.supernodes:
            return node
        return self._node_id(params)

    # ---- static preview: the pruned graph's strongest nodes by layer
    def _static_html(self) -> str:
        pruning = self.pruning()
        kept = pruning.node_mask.nonzero()[:, 0].tolist()
        infl = pruning.influence
        top = sorted((i for i in kept if int(self.graph.node_type[i]) in (inf.FEATURE, inf.ERROR)), key=lambda i: -float(infl[i]))
        rows = "".join(f"<tr><td>{esc(self.graph.nodes[i].label or self.graph.nodes[i].id)}</td>"
                       f"<td style='text-align:right'>{float(infl[i]):.3g}</td></tr>" for i in top[:20])
        body = (f"<div>{pruning.n_nodes} of {len(self.graph)} nodes, {pruning.n_edges} of {len(self.graph.src)} edges at "
                f"node threshold {self.node_threshold:g}, edge threshold {self.edge_threshold:g}</div>"
                f"<table><tr><th>strongest nodes</th><th>influence on the targets</th></tr>{rows}</table>")
        return frame(self.title, body)


# ---- the payload -------------------------------------------------------------------------------------
def sent_nodes(graph: AttributionGraph, max_node_threshold: float, influence: torch.Tensor) -> torch.Tensor:
    """The node mask `graph.prune(max_node_threshold, .)` starts from, before its clean-up `[n]`: every node pruning at
    a node threshold <= max_node_threshold can keep."""
    keep = influence >= inf.find_threshold(influence, max_node_threshold)
    return keep | (graph.node_type == inf.TOKEN) | (graph.node_type == inf.LOGIT)


def graph_payload(graph: AttributionGraph, max_node_threshold: float, saes: SAESet) -> dict[str, Any]:
    """The nodes the view can show, the edges among them (indices into the sent nodes, in the graph's edge order) and
    the numbers js/lib/prune.ts needs to prune them exactly as `graph.prune` does; "_sent" holds the sent indices."""
    influence = graph.influence()  # [n] float64
    keep = sent_nodes(graph, max_node_threshold, influence)
    index = keep.nonzero()[:, 0]
    local = torch.full((len(graph),), -1, dtype=torch.long)
    local[index] = torch.arange(len(index))
    live = keep[graph.src] & keep[graph.dst]
    nodes = [graph.nodes[i] for i in index.tolist()]
    clerps, evidence = zip(*(_labels(saes, n) for n in nodes)) if nodes else ((), ())
    return {
        "_sent": set(index.tolist()),
        "nodes": {
            "index": _int32(index),
            "ids": [n.id for n in nodes],
            "labels": [n.label or n.id for n in nodes],
            "clerps": list(clerps),
            "evidence": list(evidence),
            "kind": [n.kind for n in nodes],
            "type": _int32(graph.node_type[index].to(torch.int32)),
            "layer": _int32([n.layer for n in nodes]),
            "position": _int32([-1 if n.position is None else n.position for n in nodes]),
            "feature": _int32([n.feature if isinstance(n.feature, int) else -1 for n in nodes]),
            "activation": float_array([math.nan if n.activation is None else n.activation for n in nodes], "float32"),
            "influence": float_array(influence[index], "float64"),
            "logit_weight": float_array(graph.logit_weights[index].double(), "float64"),
        },
        "edges": {
            "src": _int32(local[graph.src[live]]),
            "dst": _int32(local[graph.dst[live]]),
            "weight": float_array(graph.weight[live], "float32"),
        },
        "totals": {
            "influence": float(influence.sort(descending=True).values.sum()),
            "nodes": len(graph), "edges": len(graph.src), "max_node_threshold": max_node_threshold,
        },
    }


def float_array(values: torch.Tensor | np.ndarray | Iterable[float], dtype: str) -> dict[str, Any]:
    """Little-endian float32 or float64 values as {"dtype", "shape", "compression": "deflate", "data"} (exact: the
    pruning compares them)."""
    code = {"float32": "<f4", "float64": "<f8"}[dtype]
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(list(values), dtype=np.float64)
    return deflated({"dtype": dtype, "shape": list(array.shape), "data": np.ascontiguousarray(array, dtype=code).tobytes()})


def _int32(values: torch.Tensor | Iterable[int]) -> dict[str, Any]:
    return deflated(int32_array(values if isinstance(values, torch.Tensor) else list(values)))


def deflated(wire: dict[str, Any]) -> dict[str, Any]:
    """A wire array with its bytes zlib-deflated (the browser inflates them with DecompressionStream)."""
    return {**wire, "compression": "deflate", "data": zlib.compress(wire["data"], 6)}


def _labels(saes: SAESet, node) -> tuple[str, str]:
    """(the feature's label, its top activations as text) from its dictionary's labels; empty where there are none."""
    sae = saes.get(node.dictionary) if node.dictionary is not None else None
    if sae is None or not isinstance(node.feature, int):
        return "", ""
    label = feature_label(sae, node.feature) or ""
    labels = getattr(sae, "labels", None)
    found = labels.evidence(node.feature) if labels is not None else None
    if found is None:
        return label, ""
    tops = ", ".join(f"{token!r} {activation:.3g}" for token, _, activation, _ in found.tokens[:EVIDENCE_TOKENS])
    return label, f"{tops} (active on {100 * found.density:.2g}% of tokens)" if tops else ""


def _label_source(graph: AttributionGraph, saes: Any, dashboard: Any) -> SAESet:
    if saes is not None:
        return SAESet.of(saes)
    if dashboard is not None and getattr(dashboard, "saes", None) is not None:
        return SAESet.of(dashboard.saes)
    if graph.linear is not None:
        return SAESet.of(list(graph.linear.transcoders) + list(graph.linear.attn_saes.values()))
    return SAESet()


def _fraction(value: Any, name: str, high: float, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= high:
        raise TraitError(f"{name} must be a number between 0 and {high}{hint}, got {shown(value)}")
    return float(value)


def _get_float(params: Mapping[str, Any], name: str, low: float, high: float) -> float:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise RequestError(f"{name} must be a number between {low:g} and {high:g}, got {shown(value)}")
    return float(value)


def _get_bool(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name)
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false, got {shown(value)}")
    return value


def _title_of(graph: AttributionGraph) -> str:
    """The title "Attribution graph · <the prompt>", without a leading special token (<|endoftext|>), at most 80 characters."""
    tokens = [str(t) for t in graph.metadata.get("prompt_tokens", [])]
    if tokens and tokens[0].startswith("<") and tokens[0].endswith(">"):
        tokens = tokens[1:]
    prompt = "".join(tokens).strip()
    prompt = prompt if len(prompt) <= 80 else "\u2026" + prompt[-79:]
    return "Attribution graph" + (f" \u00b7 {prompt}" if prompt else "")
