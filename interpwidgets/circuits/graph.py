"""`Circuit`: a graph of nodes (SAE features, error terms, embeddings, biases, the metric) and weighted edges.

Every circuit method returns one. Nodes carry where they live (`layer`, `kind`, `feature`,
`position`) so a drawing can lay them out by layer and position, the dictionary they belong to, a
`label` for people and an `effect` (the node's effect on the metric, or its attribution to the target).
Edges carry a signed `weight`. A circuit serialises to JSON (`to_json` / `Circuit.from_json`) and to
networkx.

Node ids are built by `node_id` in the place grammar of `interventions.components`, so `parse_node` reads
a feature, error or embedding node's id back to the hook its value lives at: "resid_post2/153@7" (feature
153 of layer 2's residual SAE at position 7), "attn1/error@3" (layer 1's attention SAE error at position
3), "mlp0/12" (summed over positions), "resid_pre0@4" (a feature circuit's embedding node), "embed@4" and
"pos_embed@4" (a linear graph's token and position embeddings). Bias nodes ("mlp3/bias", "logit/bias") and
"metric" are not places.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

from interpwidgets.models.files import read_json, write_text_atomic

FORMAT_VERSION = 2

# drawing order of the components inside one layer (what a layer reads before what it writes)
KIND_ORDER = {"resid_pre": 0, "embed": 0, "pos_embed": 0, "attn": 1, "mlp": 2, "resid_post": 3, "logit": 5, "metric": 5}
KINDS = tuple(KIND_ORDER)
_UNLAYERED = ("embed", "pos_embed", "metric")

Feature = Union[int, str, None]  # an SAE latent index, "error", "bias", or None (embeddings, the metric)


def node_id(kind: str, layer: int | None = None, feature: Feature = None, position: int | None = None) -> str:
    """The canonical id of a node (see the module docstring)."""
    if kind not in KIND_ORDER:
        raise ValueError(f"Unknown node kind {kind!r}; choose one of {KINDS}.")
    base = kind if kind in _UNLAYERED else f"{kind}{'' if layer is None else layer}"
    if feature is not None:
        base = f"{base}/{feature}"
    return base if position is None else f"{base}@{position}"


@dataclass
class Node:
    """One node of a circuit.

    layer: the block the node belongs to (embeddings: 0; the metric or logits: n_layers).
    kind: "resid_pre" | "embed" | "pos_embed" | "attn" | "mlp" | "resid_post" | "logit" | "metric"
        ("attn"/"mlp"/"resid_post": the output of that component, decomposed by an SAE or transcoder).
    feature: SAE latent index, "error" (the dictionary's reconstruction error), "bias", or None.
    position: token position, or None for a node summed over positions.
    effect: the node's effect on the metric (feature circuits) or attribution to the target
        (linear graphs); `activation` its value on the prompt where the method records one.
    dictionary: the input hook of the SAE or transcoder whose feature or error this is (the key of the
        `SAESet` holding it), None for embeddings, biases and the metric.
    """

    id: str
    layer: int
    kind: str
    feature: Feature = None
    position: int | None = None
    label: str = ""
    effect: float = 0.0
    activation: float | None = None
    dictionary: str | None = None

    @property
    def is_feature(self) -> bool:
        return isinstance(self.feature, int)

    @property
    def place(self) -> str:
        """The id's place: "resid_post2", "attn1", "resid_pre0", "embed", "mlp3" (of "mlp3/bias"), "metric"."""
        return self.id.split("@")[0].split("/")[0]

    @property
    def sort_key(self) -> tuple:
        """Order for drawing: by layer, then component within the layer, then position, then feature."""
        feature = self.feature if isinstance(self.feature, int) else -1
        position = -1 if self.position is None else self.position
        return (self.layer, KIND_ORDER.get(self.kind, 9), position, feature)


@dataclass
class Edge:
    """A directed edge `src -> dst` (node ids) with a signed weight (effect through this edge)."""

    src: str
    dst: str
    weight: float


@dataclass
class Circuit:
    """Nodes, edges and the facts needed to reproduce them.

    method: how the circuit was found: "atp" or "ig" (`feature_circuit`), "linear_graph"
        (`hierarchical_attribution`), or "" for a circuit built by hand.
    kinds: the SAE site kinds a feature circuit was built over (what `faithfulness` splits again);
        empty for linear-graph circuits, whose MLP nodes are transcoder features.
    metadata: JSON-serialisable facts, e.g. task, metric, thresholds, n_layers, and for a
        circuit that selected nothing a "message" saying why.
    effects: the dense node effects the circuit was selected from (a `NodeEffects`, for
        faithfulness curves); not serialised.
    """

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    effects: Any = field(default=None, repr=False, compare=False)
    method: str = ""
    kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        ids = [n.id for n in self.nodes]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"A circuit's node ids must be unique; repeated: {dup[:5]}.")
        known = set(ids)
        for edge in self.edges:
            if edge.src not in known or edge.dst not in known:
                raise ValueError(f"Edge {edge.src!r} -> {edge.dst!r} names a node that is not in the circuit.")

    # ---- views ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of nodes other than the metric / target node(s)."""
        return sum(1 for n in self.nodes if n.kind != "metric")

    def __contains__(self, node: str) -> bool:
        return node in self._by_id()

    def _by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    def node(self, node: str) -> Node:
        """The node with id `node` (KeyError naming it if absent)."""
        try:
            return self._by_id()[node]
        except KeyError:
            raise KeyError(f"No node {node!r} in this circuit ({len(self.nodes)} nodes).") from None

    @property
    def is_empty(self) -> bool:
        return len(self) == 0

    @property
    def message(self) -> str | None:
        """Why the circuit is empty or partial, when a method said so."""
        return self.metadata.get("message")

    @property
    def weights(self) -> dict[tuple[str, str], float]:
        """`{(src, dst): weight}` for every edge."""
        return {(e.src, e.dst): e.weight for e in self.edges}

    @property
    def labels(self) -> dict[str, str]:
        """`{node id: label}`."""
        return {n.id: n.label for n in self.nodes}

    def by_layer(self) -> dict[int, list[Node]]:
        """Nodes grouped by layer, each group in drawing order (component, position, feature)."""
        out: dict[int, list[Node]] = {}
        for n in sorted(self.nodes, key=lambda n: n.sort_key):
            out.setdefault(n.layer, []).append(n)
        return out

    def features(self, kind: str | None = None) -> list[Node]:
        """The SAE-feature nodes (not errors, embeddings or biases), optionally of one kind."""
        return [n for n in self.nodes if n.is_feature and (kind is None or n.kind == kind)]

    def features_by_dictionary(self) -> dict[str, list[int]]:
        """`{dictionary input hook: [feature indices]}` of the feature nodes (positions dropped): what
        `iw.sae.ablate_features(model, saes, circuit)` ablates."""
        out: dict[str, set[int]] = {}
        for n in self.features():
            if n.dictionary is None:
                raise ValueError(f"Feature node {n.id!r} names no dictionary (Node.dictionary); set it to the input hook "
                                 "of the SAE or transcoder it belongs to.")
            out.setdefault(n.dictionary, set()).add(int(n.feature))
        return {hook: sorted(idx) for hook, idx in out.items()}

    def top(self, k: int = 10) -> list[Node]:
        """The `k` non-metric nodes with the largest |effect|."""
        return sorted((n for n in self.nodes if n.kind != "metric"), key=lambda n: -abs(n.effect))[:k]

    # ---- pruning -------------------------------------------------------------------------------
    def prune(
        self,
        node_threshold: float | None = None,
        edge_threshold: float | None = None,
        top_k: int | None = None,
        connected: bool = False,
    ) -> "Circuit":
        """A new circuit keeping nodes with |effect| >= node_threshold (and only the `top_k` largest),
        edges with |weight| >= edge_threshold between kept nodes, and, with `connected`, only nodes
        with a path to a metric node. Metric nodes are always kept. Selecting nothing gives an empty
        circuit whose `message` says which threshold removed everything."""
        candidates = [n for n in self.nodes if n.kind != "metric"]
        keep = [n for n in candidates if node_threshold is None or abs(n.effect) >= node_threshold]
        if top_k is not None:
            if top_k < 0:
                raise ValueError(f"top_k must be >= 0, got {top_k}.")
            keep = sorted(keep, key=lambda n: -abs(n.effect))[:top_k]
        kept = {n.id for n in keep} | {n.id for n in self.nodes if n.kind == "metric"}
        edges = [
            e for e in self.edges
            if e.src in kept and e.dst in kept and (edge_threshold is None or abs(e.weight) >= edge_threshold)
        ]
        if connected:
            kept = _reaching_metric(kept, edges, {n.id for n in self.nodes if n.kind == "metric"})
            edges = [e for e in edges if e.src in kept and e.dst in kept]
        metadata = {**self.metadata, "pruned": dict(node_threshold=node_threshold, edge_threshold=edge_threshold,
                                                     top_k=top_k, connected=connected)}
        nodes = [n for n in self.nodes if n.id in kept]
        if candidates and not any(n.kind != "metric" for n in nodes):
            metadata["message"] = (
                f"Pruning removed every node (node_threshold={node_threshold}, top_k={top_k}, connected={connected}); "
                f"the largest |effect| was {max(abs(n.effect) for n in candidates):.4g}."
            )
        return Circuit(nodes, edges, metadata, self.effects, self.method, self.kinds)

    # ---- export --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "kinds": list(self.kinds),
            "nodes": [asdict(n) for n in self.nodes],
            "edges": [asdict(e) for e in self.edges],
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Circuit":
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"Unsupported circuit format_version {version!r}; this version reads {FORMAT_VERSION} "
                             "(version 1 named places 'resid2', 'embed' and nodes no dictionary: rebuild such circuits).")
        try:
            nodes = [Node(**n) for n in data["nodes"]]
            edges = [Edge(**e) for e in data["edges"]]
        except (KeyError, TypeError) as err:
            raise ValueError(f"Malformed circuit JSON: {err}.") from None
        return cls(nodes, edges, dict(data.get("metadata", {})), method=str(data.get("method", "")),
                   kinds=tuple(data.get("kinds", ())))

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        """The circuit as JSON text (also written to `path` when given, atomically: a crash leaves the old file or
        the new one)."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            write_text_atomic(path, text)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> "Circuit":
        """A circuit from JSON text or from the path of a JSON file."""
        data = read_json(source, "circuit", "Write it again with circuit.to_json(path).")
        return cls.from_dict(data)

    def to_networkx(self):
        """A `networkx.DiGraph` with node attributes (layer, kind, feature, position, label, effect)
        and edge attribute `weight`."""
        try:
            import networkx as nx
        except ImportError:
            raise ImportError(
                "Circuit.to_networkx needs networkx; install it with `pip install networkx` "
                "(or `pip install interpwidgets[dev]`)."
            ) from None
        graph = nx.DiGraph(**self.metadata, method=self.method, kinds=list(self.kinds))
        for n in self.nodes:
            graph.add_node(n.id, **{k: v for k, v in asdict(n).items() if k != "id"})
        for e in self.edges:
            graph.add_edge(e.src, e.dst, weight=e.weight)
        return graph

    def to_dataframe(self):
        """Nodes as a pandas DataFrame, largest |effect| first."""
        return nodes_dataframe(self.nodes)

    def __repr__(self) -> str:
        head = f"Circuit({len(self)} nodes, {len(self.edges)} edges"
        if "task" in self.metadata:
            head += f", task={self.metadata['task']!r}"
        if self.method:
            head += f", method={self.method!r}"
        if self.message:
            head += f", message={self.message!r}"
        return head + ")"


def nodes_dataframe(nodes: Iterable[Node]):
    """`nodes` as a pandas DataFrame (one column per `Node` field), largest |effect| first."""
    import pandas as pd

    frame = pd.DataFrame([asdict(n) for n in nodes])
    if frame.empty:
        return frame
    return frame.reindex(frame["effect"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def _reaching_metric(kept: set[str], edges: list[Edge], sinks: set[str]) -> set[str]:
    parents: dict[str, list[str]] = {}
    for e in edges:
        parents.setdefault(e.dst, []).append(e.src)
    seen = set(sinks & kept)
    stack = list(seen)
    while stack:
        for p in parents.get(stack.pop(), []):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen
