"""What changed between two attribution graphs of one model: nodes and edges ranked by how much they moved.

    clean = iw.circuits.attribution_graph(model, saes, ioi.clean_tokens[:1], targets)
    corrupt = iw.circuits.attribution_graph(model, saes, ioi.corrupt_tokens[:1], targets)
    d = iw.circuits.graph_diff(clean, corrupt)
    d.nodes(10); d.edges(10); d.plot()

Nodes are matched by id (dictionary, feature and position, so the two prompts are compared position by position)
and edges by their two ends. A node or edge present in one graph only counts as zero in the other. Nodes are
ranked by the change of their influence on the graph's weighted targets (each graph's own targets), edges by the
change of their weight (a direct effect, in the target's units); `activation` and `weight` keep both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interpwidgets.circuits.attribution_graph import AttributionGraph, Pruning


@dataclass(frozen=True)
class NodeChange:
    id: str
    label: str
    influence: tuple[float, float]  # (a, b)
    activation: tuple[float | None, float | None]

    @property
    def change(self) -> float:
        return self.influence[1] - self.influence[0]


@dataclass(frozen=True)
class EdgeChange:
    src: str
    dst: str
    weight: tuple[float, float]  # (a, b)

    @property
    def change(self) -> float:
        return self.weight[1] - self.weight[0]


@dataclass
class GraphDiff:
    """Every node and edge of two graphs with both sides' values; `nodes(k)` / `edges(k)` rank them by |change|."""

    a: AttributionGraph | Pruning
    b: AttributionGraph | Pruning
    node_changes: list[NodeChange]
    edge_changes: list[EdgeChange]
    names: tuple[str, str] = ("a", "b")

    def nodes(self, k: int = 10) -> list[NodeChange]:
        return sorted(self.node_changes, key=lambda c: -abs(c.change))[:k]

    def edges(self, k: int = 10) -> list[EdgeChange]:
        return sorted(self.edge_changes, key=lambda c: -abs(c.change))[:k]

    def to_dataframe(self, what: str = "nodes"):
        """The node (or edge) changes as a pandas DataFrame, largest |change| first."""
        import pandas as pd

        if what == "nodes":
            rows = [{"id": c.id, "label": c.label, f"influence_{self.names[0]}": c.influence[0],
                     f"influence_{self.names[1]}": c.influence[1], "change": c.change,
                     f"activation_{self.names[0]}": c.activation[0], f"activation_{self.names[1]}": c.activation[1]}
                    for c in self.nodes(len(self.node_changes))]
        elif what == "edges":
            rows = [{"src": c.src, "dst": c.dst, f"weight_{self.names[0]}": c.weight[0],
                     f"weight_{self.names[1]}": c.weight[1], "change": c.change} for c in self.edges(len(self.edge_changes))]
        else:
            raise ValueError(f"what must be 'nodes' or 'edges', got {what!r}.")
        return pd.DataFrame(rows)

    def plot(self, k: int = 12, axes=None):
        """Two panels of signed bars: the k nodes whose influence changed most, and the k edges whose weight did."""
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(11, 0.32 * k + 1.2))
        a, b = self.names
        for ax, items, labels, unit in (
            (axes[0], [c.change for c in self.nodes(k)], [c.label or c.id for c in self.nodes(k)], "influence"),
            (axes[1], [c.change for c in self.edges(k)], [f"{c.src} \u2192 {c.dst}" for c in self.edges(k)],
             "edge weight (target units)"),
        ):
            ax.barh(range(len(items))[::-1], items, color=["#2b6cb0" if v >= 0 else "#c53030" for v in items])
            ax.set_yticks(range(len(items))[::-1], labels, fontsize=8)
            ax.axvline(0, color="grey", lw=0.8)
            ax.set_xlabel(f"change of {unit}: {b} \u2212 {a}")
        axes[0].set_title("nodes that changed most")
        axes[1].set_title("edges that changed most")
        return axes

    def __repr__(self) -> str:
        top = self.nodes(1)
        most = f"; most changed node {top[0].id} ({top[0].change:+.3g})" if top else ""
        return f"GraphDiff({len(self.node_changes)} nodes, {len(self.edge_changes)} edges{most})"


def graph_diff(a: AttributionGraph | Pruning, b: AttributionGraph | Pruning, *,
               names: tuple[str, str] = ("a", "b")) -> GraphDiff:
    """The changes from `a` to `b`: two graphs of the same model, or their prunings (then only what each keeps
    counts, with the unpruned graph's influence); see the module docstring."""
    sides = [_side(x) for x in (a, b)]
    for key in ("model", "n_layers"):
        first, second = (g.metadata.get(key) for g, *_ in sides)
        if first != second:
            raise ValueError(f"The two graphs come from different models ({key} {first!r} vs {second!r}); a diff "
                             "compares graphs of one model.")
    influence: dict[str, list] = {}
    weights: dict[tuple[str, str], list[float]] = {}
    for side, (g, node_mask, edge_mask, node_influence) in enumerate(sides):
        for i in node_mask.nonzero()[:, 0].tolist():
            node = g.nodes[i]
            entry = influence.setdefault(node.id, [0.0, 0.0, None, None, node.label])
            entry[side], entry[2 + side] = float(node_influence[i]), node.activation
        ids = [n.id for n in g.nodes]
        for s, d, w in zip(g.src[edge_mask].tolist(), g.dst[edge_mask].tolist(), g.weight[edge_mask].tolist()):
            weights.setdefault((ids[s], ids[d]), [0.0, 0.0])[side] = w
    nodes = [NodeChange(i, v[4], (v[0], v[1]), (v[2], v[3])) for i, v in influence.items()]
    edges = [EdgeChange(s, d, (w[0], w[1])) for (s, d), w in weights.items()]
    return GraphDiff(a, b, nodes, edges, names)


def _side(x: AttributionGraph | Pruning) -> tuple[AttributionGraph, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(graph, node mask, edge mask, node influence) of a graph or a pruning."""
    if isinstance(x, Pruning):
        return x.graph, x.node_mask, x.edge_mask, x.influence
    if isinstance(x, AttributionGraph):
        return x, torch.ones(len(x), dtype=torch.bool), torch.ones(len(x.src), dtype=torch.bool), x.influence()
    raise TypeError(f"graph_diff compares AttributionGraphs or their Prunings, got {type(x).__name__}.")
