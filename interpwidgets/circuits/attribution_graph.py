"""Prompt-level attribution graphs (Ameisen et al. 2025; circuit-tracer), built on `LinearGraph`.

    g = iw.circuits.attribution_graph(model, saes, "When Mary and John went to the store, John gave a drink to")
    p = g.prune(node_threshold=0.8, edge_threshold=0.98)     # Pruning: masks, cumulative influence
    g.scores()                                              # GraphScores(replacement, completeness)
    g.faithfulness(p)                                       # real ablation of what pruning removed
    g.intervene({"mlp2/153@7": 0.0})                        # the logits with a feature set, attention frozen

Nodes, in this order: every active transcoder feature (and attention-SAE feature, with `attn_saes=True`) at
every position, ordered by layer, component, position, feature; the error of every dictionary at every
position; the token embeddings (and learned position embeddings) at every position; the bias nodes ("mlp2/bias":
the model's and the dictionaries' biases of that component, summed over positions); the logit targets.
Edges are every exact direct effect `src -> dst` of the frozen replacement model (see `linear_graph`): the
contribution of src to dst's pre-activation (a feature) or target value (a logit). For every target node,
`values[i] = sum of its incoming weights + remainder[i]`; the remainder is float rounding, plus the
contributions of the active features the `max_feature_nodes` budget left out of the graph.

Logit targets default to the most likely next tokens until their probability reaches `desired_logit_prob` (at
most `max_n_logits`), each "demeaned" as circuit-tracer does: logit(t) - mean over the vocabulary of the logits,
weighted by its probability. `targets=` takes token ids or strings (demeaned, weighted by probability),
`LogitTarget`s (logit(answer) - logit(wrong), weight 1 each) or a direction `[d_vocab]` over the logits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from interpwidgets.circuits import graph_runs
from interpwidgets.circuits import influence as inf
from interpwidgets.circuits.graph import Circuit, Edge, Node, node_id
from interpwidgets.circuits.linear_graph import (
    FeatureTarget,
    LinearGraph,
    LogitTarget,
    _leaf_identity,
    dictionary_site,
)
from interpwidgets.config import progress_enabled
from interpwidgets.models.files import read_json, write_text_atomic
from interpwidgets.models.tokens import token_text

FORMAT = "interpwidgets.attribution_graph"
FORMAT_VERSION = 1
MAX_FEATURE_NODES = 7500
_STAGE = {"attn": 0, "mlp": 1}


@dataclass
class Pruning:
    """The part of an attribution graph that pruning keeps: `node_mask [n]`, `edge_mask [E]` (over
    `graph.src/dst/weight`), each node's `influence [n]` on the unpruned graph and `cumulative [n]` share."""

    graph: "AttributionGraph"
    node_mask: torch.Tensor
    edge_mask: torch.Tensor
    influence: torch.Tensor
    cumulative: torch.Tensor
    node_threshold: float
    edge_threshold: float

    @property
    def node_ids(self) -> list[str]:
        return [self.graph.nodes[i].id for i in self.node_mask.nonzero()[:, 0].tolist()]

    @property
    def n_nodes(self) -> int:
        return int(self.node_mask.sum())

    @property
    def n_edges(self) -> int:
        return int(self.edge_mask.sum())

    def scores(self) -> inf.GraphScores:
        """Replacement and completeness scores of the pruned graph (its kept edges only)."""
        g = self.graph
        m = self.edge_mask
        return inf.scores(g.src[m], g.dst[m], g.weight[m], g.node_type, g.logit_weights)

    def faithfulness(self, **kwargs) -> Any:
        """`graph.faithfulness(self, **kwargs)`."""
        return self.graph.faithfulness(self, **kwargs)

    def circuit(self) -> Circuit:
        """The kept nodes and edges as a `Circuit` (node effect = influence), e.g. for `CircuitGraph`."""
        return self.graph.circuit(self)

    def __repr__(self) -> str:
        return (f"Pruning({self.n_nodes} of {len(self.node_mask)} nodes, {self.n_edges} of {len(self.edge_mask)} edges; "
                f"node_threshold={self.node_threshold}, edge_threshold={self.edge_threshold})")


@dataclass
class AttributionGraph:
    """Nodes and exact direct-effect edges of one prompt (see the module docstring).

    nodes: `Node`s (`activation`: a feature's activation); node_type `[n]` int8 codes of `influence.NODE_TYPES`;
    src, dst `[E]` int64 and weight `[E]` float32: the edges; values `[n]`: a target node's pre-activation or
    target value (NaN for pure sources); remainder `[n]`: value minus its incoming weights; logit_weights `[n]`:
    the weight of each logit target (zero elsewhere); supernodes: name -> member node ids; metadata: the prompt,
    its tokens, the model and dictionaries, the targets and budget. `linear` is the `LinearGraph` it was built
    on (None for a graph read from a file: such a graph prunes and scores, but cannot run ablations).
    """

    nodes: list[Node]
    node_type: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor
    weight: torch.Tensor
    values: torch.Tensor
    remainder: torch.Tensor
    logit_weights: torch.Tensor
    metadata: dict[str, Any] = field(default_factory=dict)
    supernodes: dict[str, list[str]] = field(default_factory=dict)
    linear: LinearGraph | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = {n.id: i for i, n in enumerate(self.nodes)}
        if len(self._index) != len(self.nodes):
            raise ValueError("An attribution graph's node ids must be unique.")

    # ---- lookups -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def index(self, node: str) -> int:
        """The position of node `node` (an id) in `nodes`; a KeyError naming it if absent."""
        try:
            return self._index[node]
        except KeyError:
            raise KeyError(f"No node {node!r} in this attribution graph ({len(self.nodes)} nodes; feature ids look like "
                           f"{self.nodes[0].id!r}).") from None

    def node(self, node: str) -> Node:
        return self.nodes[self.index(node)]

    def of_type(self, kind: str) -> torch.Tensor:
        """Indices `[k]` of the nodes of one type ("feature", "error", "token", "bias", "logit")."""
        if kind not in inf.NODE_TYPES:
            raise ValueError(f"Unknown node type {kind!r}; choose one of {inf.NODE_TYPES}.")
        return (self.node_type == inf.NODE_TYPES.index(kind)).nonzero()[:, 0]

    @property
    def logit_nodes(self) -> list[Node]:
        return [self.nodes[i] for i in self.of_type("logit").tolist()]

    def inputs(self, node: str) -> dict[str, float]:
        """`{source id: weight}` of the edges into `node`."""
        i = self.index(node)
        m = self.dst == i
        return {self.nodes[s].id: float(w) for s, w in zip(self.src[m].tolist(), self.weight[m].tolist())}

    # ---- pruning and scores --------------------------------------------------------------------
    def influence(self) -> torch.Tensor:
        """Each node's influence on the weighted logit targets `[n]` (see `influence`)."""
        return inf.influence(self.src, self.dst, self.weight, self.logit_weights)

    def prune(self, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Pruning:
        """Keep the nodes carrying `node_threshold` of the influence, then the edges carrying `edge_threshold` of the
        edge influence, iterated until every kept feature has inputs and outputs (circuit-tracer's `prune_graph`)."""
        masks = inf.prune(self.src, self.dst, self.weight, self.node_type, self.logit_weights, node_threshold, edge_threshold)
        return Pruning(self, masks.node_mask, masks.edge_mask, masks.influence, masks.cumulative,
                       node_threshold, edge_threshold)

    def scores(self) -> inf.GraphScores:
        """Replacement and completeness scores of the whole graph."""
        return inf.scores(self.src, self.dst, self.weight, self.node_type, self.logit_weights)

    # ---- runs on the model ---------------------------------------------------------------------
    def faithfulness(self, kept: "Pruning | Iterable[str]", *, ablation: str = "zero", reference: torch.Tensor | None = None):
        """Faithfulness and completeness of `kept` (a `Pruning` or node ids) by real ablation: every feature and
        error node outside it ablated (zero, or its mean over `reference` tokens), the model run for real
        (attention recomputed). See `graph_runs.faithfulness`."""
        return graph_runs.faithfulness(self, kept, ablation=ablation, reference=reference)

    def intervene(self, values: Mapping[str, float], *, relative: bool = False, freeze_attention: bool = True,
                  constrained_layers: Iterable[int] | None = None):
        """The model's output with feature nodes (or every feature of a supernode) set to `values` (with `relative`,
        scaled by them: 0 ablates, 2 doubles): a `GraphIntervention`. `freeze_attention` holds attention patterns
        and norm scales at their clean values; `constrained_layers` holds those layers' features and errors there
        too. See `graph_runs.intervene`."""
        return graph_runs.intervene(self, values, relative=relative, freeze_attention=freeze_attention,
                                    constrained_layers=constrained_layers)

    # ---- supernodes ----------------------------------------------------------------------------
    def group(self, name: str, members: Iterable[str]) -> list[str]:
        """Group nodes into the supernode `name` (kept in the graph and its exports); returns the members."""
        members = list(dict.fromkeys(members))
        if not isinstance(name, str) or not name.strip():
            raise ValueError("A supernode needs a non-empty name.")
        if name in self._index:
            raise ValueError(f"{name!r} is a node id; give the supernode another name.")
        if len(members) < 1:
            raise ValueError("A supernode needs at least one member node.")
        for m in members:
            self.index(m)
        self.supernodes[name] = members
        return members

    def ungroup(self, name: str) -> None:
        if name not in self.supernodes:
            raise KeyError(f"No supernode {name!r}; the graph has {sorted(self.supernodes)}.")
        del self.supernodes[name]

    def members(self, node_or_supernode: str) -> list[str]:
        """The node ids a name stands for: a supernode's members, or the node itself."""
        if node_or_supernode in self.supernodes:
            return list(self.supernodes[node_or_supernode])
        self.index(node_or_supernode)
        return [node_or_supernode]

    # ---- views and files -----------------------------------------------------------------------
    def circuit(self, pruning: Pruning | None = None) -> Circuit:
        """The graph (or its pruned part) as a `Circuit`: node effect = influence, edges = direct effects."""
        infl = pruning.influence if pruning is not None else self.influence()
        keep_nodes = pruning.node_mask if pruning is not None else torch.ones(len(self), dtype=torch.bool)
        keep_edges = pruning.edge_mask if pruning is not None else torch.ones(len(self.src), dtype=torch.bool)
        nodes = []
        for i in keep_nodes.nonzero()[:, 0].tolist():
            n = self.nodes[i]
            kind = "metric" if self.node_type[i] == inf.LOGIT else n.kind
            nodes.append(Node(n.id, n.layer, kind, n.feature, n.position, n.label, float(infl[i]), n.activation, n.dictionary))
        edges = [Edge(self.nodes[s].id, self.nodes[d].id, w) for s, d, w in
                 zip(self.src[keep_edges].tolist(), self.dst[keep_edges].tolist(), self.weight[keep_edges].tolist())]
        metadata = {k: v for k, v in self.metadata.items() if k in ("prompt", "prompt_tokens", "n_layers", "model")}
        if pruning is not None:
            metadata["pruned"] = {"node_threshold": pruning.node_threshold, "edge_threshold": pruning.edge_threshold}
        return Circuit(nodes, edges, metadata, method="attribution_graph")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "nodes": [asdict(n) for n in self.nodes],
            "node_type": [inf.NODE_TYPES[t] for t in self.node_type.tolist()],
            "edges": {"src": self.src.tolist(), "dst": self.dst.tolist(), "weight": self.weight.tolist()},
            "values": [None if math.isnan(v) else v for v in self.values.tolist()],
            "remainder": self.remainder.tolist(),
            "logit_weights": self.logit_weights.tolist(),
            "supernodes": self.supernodes,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AttributionGraph":
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"Not an attribution graph of this version (format {data.get('format')!r} version "
                             f"{data.get('format_version')!r}; this version reads {FORMAT!r} {FORMAT_VERSION}). A "
                             "circuit-tracer or Neuronpedia graph file is read by iw.circuits.from_neuronpedia.")
        try:
            edges = data["edges"]
            return cls(
                nodes=[Node(**n) for n in data["nodes"]],
                node_type=torch.tensor([inf.NODE_TYPES.index(t) for t in data["node_type"]], dtype=torch.int8),
                src=torch.tensor(edges["src"], dtype=torch.long), dst=torch.tensor(edges["dst"], dtype=torch.long),
                weight=torch.tensor(edges["weight"], dtype=torch.float32),
                values=torch.tensor([math.nan if v is None else v for v in data["values"]], dtype=torch.float32),
                remainder=torch.tensor(data["remainder"], dtype=torch.float32),
                logit_weights=torch.tensor(data["logit_weights"], dtype=torch.float32),
                supernodes={str(k): list(v) for k, v in data.get("supernodes", {}).items()},
                metadata=dict(data.get("metadata", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"Malformed attribution graph JSON: {err}.") from None

    def to_json(self, path: str | Path | None = None) -> str:
        """Lossless JSON (float32 weights round-trip exactly); written atomically to `path` when given."""
        text = json.dumps(self.to_dict())
        if path is not None:
            write_text_atomic(path, text)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> "AttributionGraph":
        """A graph from `to_json` text or the path of such a file."""
        data = read_json(source, "attribution graph")
        return cls.from_dict(data)

    def __repr__(self) -> str:
        counts = {t: int((self.node_type == i).sum()) for i, t in enumerate(inf.NODE_TYPES)}
        parts = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        return f"AttributionGraph({len(self)} nodes: {parts}; {len(self.src)} edges)"


# ---- building ------------------------------------------------------------------------------------
@dataclass
class _Target:
    node: Node
    weight: float
    value: torch.Tensor  # scalar of the linear pass
    read: "Readout"
    direction: list[float] | None = None  # a direction target's weights over the vocabulary, kept in the metadata


def attribution_graph(
    model,
    saes,
    prompt: str | torch.Tensor | Sequence[int],
    targets: Any = None,
    *,
    max_feature_nodes: int = MAX_FEATURE_NODES,
    attn_saes: bool = False,
    max_n_logits: int = 10,
    desired_logit_prob: float = 0.95,
    batch_size: int = 256,
    progress: bool | None = None,
) -> AttributionGraph:
    """The attribution graph of `prompt` (see the module docstring).

    saes: an SAESet (or dict keyed by input hook) with a transcoder for every layer, and attention-output SAEs
    when `attn_saes`. max_feature_nodes: at most this many feature nodes, chosen by influence on the targets
    (rows are computed most influential first, re-ranking as rows arrive, as circuit-tracer does); the features
    left out show up in `remainder`. batch_size: rows per backward pass.
    """
    if max_feature_nodes < 0 or batch_size < 1:
        raise ValueError(f"max_feature_nodes must be >= 0 and batch_size >= 1, got {max_feature_nodes}, {batch_size}.")
    lg = LinearGraph(model, saes, prompt, attn_saes=attn_saes)
    goals = _targets(lg, targets, max_n_logits, desired_logit_prob)
    features = sorted(lg.active_features("mlp") + (lg.active_features("attn") if attn_saes else []),
                      key=lambda t: (t.layer, _STAGE[t.kind], t.position, t.feature))
    columns = _Columns(lg, features)
    n_logits = len(goals)
    budget = min(max_feature_nodes, len(features))
    bar = tqdm(total=budget + n_logits, desc="attribution graph", disable=not progress_enabled(progress), leave=False)
    bias_runs = _bias_runs(lg, columns)
    logit_rows = _rows(lg, columns, [g.read for g in goals], bias_runs, bar)  # [n_logits, n_cols]
    feature_rows: dict[int, torch.Tensor] = {}
    weights = torch.tensor([g.weight for g in goals], dtype=torch.float64)
    while len(feature_rows) < budget:
        if budget == len(features):
            pending = [i for i in range(len(features)) if i not in feature_rows]
        else:
            ranked = _partial_influence(logit_rows, weights, feature_rows, len(features))
            pending = [i for i in ranked.argsort(descending=True).tolist() if i not in feature_rows]
            pending = pending[: min(4 * batch_size, budget - len(feature_rows))]
        for chunk in _batches(pending, features, batch_size):
            rows = _rows(lg, columns, [_feature_readout(features[i]) for i in chunk], bias_runs, bar,
                         stop_at=_stop_hook(max((features[i] for i in chunk), key=lambda t: (t.layer, _STAGE[t.kind]))))
            feature_rows.update(zip(chunk, rows))
    bar.close()
    selected = sorted(feature_rows)
    return _assemble(lg, goals, features, selected, columns, logit_rows, feature_rows, max_feature_nodes, attn_saes)


class _Columns:
    """Where each source sits in a row: feature columns per dictionary leaf, then errors, embeddings, biases."""

    def __init__(self, lg: LinearGraph, features: list[FeatureTarget]):
        self.keys: list[tuple] = []  # (kind, layer, feature, position) as LinearGraph.node takes them
        self.types: list[int] = []
        self.feature_cols: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # leaf -> (cols, pos, feat)
        by_leaf: dict[str, list[int]] = {}
        for i, t in enumerate(features):
            by_leaf.setdefault(f"{t.kind}{t.layer}", []).append(i)
            self.keys.append((t.kind, t.layer, t.feature, t.position))
            self.types.append(inf.FEATURE)
        for leaf, idx in by_leaf.items():
            self.feature_cols[leaf] = (torch.tensor(idx), torch.tensor([features[i].position for i in idx]),
                                       torch.tensor([features[i].feature for i in idx]))
        self.n_features = len(features)
        self.dense_cols: dict[str, int] = {}  # leaf -> first column of its per-position block
        errors = sorted((_leaf_identity(k)[1], _STAGE[_leaf_identity(k)[0]], k) for k in lg.values if k.endswith("/error"))
        for layer, _, leaf in errors:
            kind = _leaf_identity(leaf)[0]
            self._block(leaf, lg.seq, [(kind, layer, "error", p) for p in range(lg.seq)], inf.ERROR)
        for leaf in ("embed", "pos_embed"):
            if leaf in lg.values:
                self._block(leaf, lg.seq, [(leaf, 0, None, p) for p in range(lg.seq)], inf.TOKEN)
        self.bias_cols: dict[tuple, int] = {}
        for group, _ in lg.biases:
            if group not in self.bias_cols:
                self.bias_cols[group] = len(self.keys)
                kind, layer = group
                self.keys.append((kind, layer, "bias", None))
                self.types.append(inf.BIAS)
        self.n = len(self.keys)

    def _block(self, leaf: str, seq: int, keys: list[tuple], node_type: int) -> None:
        self.dense_cols[leaf] = len(self.keys)
        self.keys += keys
        self.types += [node_type] * seq


class _Run:
    """One frozen pass to read targets from: the dictionaries' pre-activations (computed from their recorded inputs,
    or recorded whole) and the logits `[batch, seq, vocab]` (before a soft-cap; None for a pass stopped early)."""

    def __init__(self, lg: LinearGraph, logits: torch.Tensor | None, inputs: dict | None = None, pre: dict | None = None):
        self.lg, self.logits, self.inputs, self.pre_all = lg, logits, inputs, pre

    def pre(self, key: str, b: int, position: int) -> torch.Tensor:
        if self.pre_all is not None:
            return self.pre_all[key][b, position]
        layer = dictionary_site(key)[0]
        sae = self.lg.transcoders[layer] if key.startswith("mlp") else self.lg.attn_saes[layer]
        return sae.encode_pre(self.inputs[key][b, position])


Readout = Callable[[_Run, int], torch.Tensor]
"""A target read off a run of the frozen pass (and a batch index): a scalar."""


def _feature_readout(t: FeatureTarget) -> Readout:
    key = f"{t.kind}{t.layer}"
    return lambda run, b: run.pre(key, b, t.position)[t.feature]


def _stop_hook(t: FeatureTarget) -> str:
    """The hook where a feature's pre-activation is known: the pass need not go further."""
    return dictionary_site(f"{t.kind}{t.layer}")[1]


def _rows(lg: LinearGraph, columns: "_Columns", readouts: list[Readout], bias_runs: list[_Run], bar,
          stop_at: str | None = None) -> torch.Tensor:
    """Direct contributions of every source to each readout `-> [d, n_cols]`: one forward and backward pass of the
    frozen model over a batch of d copies of the prompt (row b reads copy b), biases from the bias-only runs."""
    d = len(readouts)
    leaves = {k: v.detach().expand(d, *v.shape[1:]).clone().requires_grad_(True) for k, v in lg.values.items()}
    inputs: dict[str, torch.Tensor] = {}
    with torch.enable_grad():
        run = _Run(lg, _logits(lg, leaves, d, inputs=inputs, stop_at=stop_at), inputs=inputs)
        out = torch.stack([read(run, b) for b, read in enumerate(readouts)])
        grads = dict(zip(leaves, torch.autograd.grad(out.sum(), list(leaves.values()), allow_unused=True)))
    rows = torch.zeros(d, columns.n, dtype=torch.float32)
    with torch.no_grad():
        for leaf, g in grads.items():
            if g is None:
                continue
            contrib = (lg.values[leaf] * g).float().cpu()  # [d, seq, width]
            if leaf in columns.feature_cols:
                cols, pos, feat = columns.feature_cols[leaf]
                rows[:, cols] = contrib[:, pos, feat]
            elif leaf in columns.dense_cols:
                start = columns.dense_cols[leaf]
                rows[:, start: start + lg.seq] = contrib.sum(-1)
        for col, bias_run in zip(columns.bias_cols.values(), bias_runs):
            rows[:, col] = torch.stack([read(bias_run, 0) for read in readouts]).float().cpu()
    bar.update(d)
    return rows


def _logits(lg: LinearGraph, leaves: dict[str, torch.Tensor], batch: int, **kwargs) -> torch.Tensor | None:
    """The frozen pass's logits (before the soft-cap on models that have one) `[batch, seq, vocab]`."""
    unembedded: dict[str, torch.Tensor] = {}
    logits = lg.run(leaves, batch=batch, unembedded=unembedded, **kwargs)
    return logits if lg.logit_soft_cap is None or logits is None else unembedded["logits"]


def _bias_runs(lg: LinearGraph, columns: "_Columns") -> list[_Run]:
    """For each bias group (in `columns.bias_cols` order), the frozen pass with every leaf zero and every other
    group's biases zero: since that pass is linear in leaves and biases, what it outputs is exactly that group's
    contribution to every pre-activation and logit. The biases are restored afterwards, bit for bit."""
    zeros = {k: torch.zeros_like(v) for k, v in lg.values.items()}
    saved = [(p, p.detach().clone()) for _, p in lg.biases]
    runs = []
    try:
        with torch.no_grad():
            for group in columns.bias_cols:
                for (g, p), (_, original) in zip(lg.biases, saved):
                    p.copy_(original if g == group else torch.zeros_like(original))
                pre: dict[str, torch.Tensor] = {}
                runs.append(_Run(lg, _logits(lg, zeros, 1, pre=pre), pre=pre))
    finally:
        with torch.no_grad():
            for p, original in saved:
                p.copy_(original)
    return runs


def _batches(pending: list[int], features: list[FeatureTarget], size: int) -> list[list[int]]:
    """`pending` in batches of at most `size`, each of one dictionary (so its pass stops at that dictionary)."""
    by_stage: dict[tuple, list[int]] = {}
    for i in pending:
        by_stage.setdefault((features[i].layer, _STAGE[features[i].kind]), []).append(i)
    return [group[s: s + size] for group in by_stage.values() for s in range(0, len(group), size)]


def _partial_influence(logit_rows: torch.Tensor, weights: torch.Tensor, feature_rows: dict[int, torch.Tensor],
                       n_features: int) -> torch.Tensor:
    """Influence `[n_features]` of every active feature on the weighted logits through the rows computed so far."""
    rows = [logit_rows] + ([torch.stack([feature_rows[i] for i in sorted(feature_rows)])] if feature_rows else [])
    matrix = torch.cat(rows).abs().double()
    matrix /= matrix.sum(1, keepdim=True).clamp_min(1e-10)
    row_of_feature = torch.full((n_features,), -1, dtype=torch.long)
    row_of_feature[torch.tensor(sorted(feature_rows), dtype=torch.long)] = torch.arange(len(feature_rows)) + len(logit_rows)
    current = torch.zeros(len(matrix), dtype=torch.float64)
    current[: len(logit_rows)] = weights
    total = torch.zeros(matrix.shape[1], dtype=torch.float64)
    for _ in range(len(matrix) + 1):
        step = current @ matrix  # [n_cols]
        if not bool(step.any()):
            break
        total += step
        current = torch.zeros(len(matrix), dtype=torch.float64)
        has_row = row_of_feature >= 0
        current[row_of_feature[has_row]] = step[:n_features][has_row]
    return total[:n_features]


def _targets(lg: LinearGraph, targets: Any, max_n_logits: int, desired_logit_prob: float) -> list[_Target]:
    """The logit targets as graph nodes with their weights and linear-pass scalars."""
    pos = lg.seq - 1
    logits = lg.logits if lg.logit_soft_cap is None else lg.logits_pre_cap
    row = logits[0, pos]
    probs = torch.softmax(lg.logits_clean[0, pos].detach().double(), -1)
    n_layers = lg.n_layers

    def demeaned(token: int) -> _Target:
        label = f"logit {lg._token_id(token)!r} (p={float(probs[token]):.3f})"
        node = Node(node_id("logit", None, token, pos), n_layers, "logit", token, pos, label, 0.0, None, None)
        return _Target(node, float(probs[token]), row[token] - row.mean(),
                       lambda run, b: run.logits[b, pos, token] - run.logits[b, pos].mean())

    if targets is None:
        if not 0 < desired_logit_prob <= 1 or max_n_logits < 1:
            raise ValueError(f"desired_logit_prob must be in (0, 1] and max_n_logits >= 1, got {desired_logit_prob}, "
                             f"{max_n_logits}.")
        order = probs.argsort(descending=True).tolist()
        chosen, mass = [], 0.0
        for t in order[:max_n_logits]:
            chosen.append(t)
            mass += float(probs[t])
            if mass >= desired_logit_prob:
                break
        return [demeaned(t) for t in chosen]
    if isinstance(targets, torch.Tensor) and targets.is_floating_point():
        if targets.shape != (row.shape[-1],):
            raise ValueError(f"A direction over the logits must have shape [d_vocab] = [{row.shape[-1]}], got "
                             f"{tuple(targets.shape)}.")
        node = Node(node_id("logit", None, "direction", pos), n_layers, "logit", "direction", pos, "logits . direction")
        direction = targets.to(row)
        return [_Target(node, 1.0, row @ direction, lambda run, b: run.logits[b, pos] @ direction,
                        targets.detach().cpu().tolist())]
    items = [targets] if isinstance(targets, (int, str, LogitTarget)) else list(targets)
    if not items:
        raise ValueError("targets is empty; pass None for the most likely next tokens.")
    out = []
    for item in items:
        if isinstance(item, LogitTarget):
            p = lg.position(item.position)
            value = lg.target_value(item)
            label = f"logit {lg._token_id(item.answer)!r}" + (f" - {lg._token_id(item.wrong)!r}" if item.wrong is not None else "")
            feature = str(item.answer) if item.wrong is None else f"{item.answer}-{item.wrong}"
            node = Node(node_id("logit", None, feature, p), n_layers, "logit", feature, p, label)
            out.append(_Target(node, 1.0 / len(items), value, _logit_readout(item, p)))
            continue
        token = _token(lg, item)
        out.append(demeaned(token))
    ids = [t.node.id for t in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"targets repeat a target: {ids}.")
    return out


def _logit_readout(target: LogitTarget, pos: int) -> Readout:
    if target.wrong is None:
        return lambda run, b: run.logits[b, pos, target.answer]
    return lambda run, b: run.logits[b, pos, target.answer] - run.logits[b, pos, target.wrong]


def _token(lg: LinearGraph, item: Any) -> int:
    vocab = lg.logits.shape[-1]
    if isinstance(item, str):
        ids = lg.model.to_tokens(item, prepend_bos=False)[0].tolist()
        if len(ids) != 1:
            raise ValueError(f"The target {item!r} is {len(ids)} tokens; a logit target is one token (pass its id).")
        return int(ids[0])
    if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < vocab:
        raise ValueError(f"A target must be a token id in [0, {vocab - 1}], a one-token string, a LogitTarget or a "
                         f"[d_vocab] direction; got {item!r}.")
    return item


def _assemble(lg, goals, features, selected, columns, logit_rows, feature_rows, max_feature_nodes, attn_saes) -> AttributionGraph:
    """Drop the unselected feature columns and lay the rows out as an edge list over the graph's nodes."""
    keep_cols = torch.tensor(selected + list(range(columns.n_features, columns.n)), dtype=torch.long)
    n_sources = len(keep_cols)
    node_of_col = torch.full((columns.n,), -1, dtype=torch.long)
    node_of_col[keep_cols] = torch.arange(n_sources)
    nodes = [lg.node(*columns.keys[c]) for c in keep_cols.tolist()]
    types = [columns.types[c] for c in keep_cols.tolist()] + [inf.LOGIT] * len(goals)
    nodes += [g.node for g in goals]
    n = len(nodes)
    values = torch.full((n,), math.nan)
    remainder = torch.zeros(n)
    srcs, dsts, ws = [], [], []

    def add(row_node: int, row: torch.Tensor, value: float) -> None:
        kept = row[keep_cols]
        nz = kept.nonzero()[:, 0]
        srcs.append(nz)
        dsts.append(torch.full((len(nz),), row_node, dtype=torch.long))
        ws.append(kept[nz])
        values[row_node] = value
        remainder[row_node] = value - float(kept.double().sum())

    for j, i in enumerate(selected):
        add(j, feature_rows[i], float(lg.target_value(features[i]).detach()))
    for k, g in enumerate(goals):
        add(n_sources + k, logit_rows[k], float(g.value.detach()))
    logit_weights = torch.zeros(n)
    logit_weights[n_sources:] = torch.tensor([g.weight for g in goals])
    order_src, order_dst, order_w = torch.cat(srcs), torch.cat(dsts), torch.cat(ws)
    model = lg.model
    metadata = {
        "prompt": token_text(model, lg.tokens[0].tolist()),
        "prompt_tokens": [lg._token_id(t) for t in lg.tokens[0].tolist()],
        "token_ids": lg.tokens[0].tolist(),
        "model": str(getattr(model.cfg, "model_name", "") or ""),
        "n_layers": lg.n_layers,
        "dictionaries": sorted({n.dictionary for n in nodes if n.dictionary}),
        "attn_saes": attn_saes,
        "n_active_features": len(features),
        "max_feature_nodes": max_feature_nodes,
        "targets": [g.node.id for g in goals],
        "pre_cap": lg.logit_soft_cap is not None,
    }
    for g in goals:
        if g.direction is not None:
            metadata["direction"] = g.direction
    return AttributionGraph(nodes, torch.tensor(types, dtype=torch.int8), order_src, order_dst, order_w, values,
                            remainder, logit_weights, metadata, linear=lg)


