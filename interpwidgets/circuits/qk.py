"""QK attribution: which pairs of inputs make a head attend from one position to another (Ge et al. 2024).

With earlier attention patterns and the LayerNorm scales frozen, a head's query at the query position
and its key at the key position are each affine in the linear graph's inputs:
q = sum_i q_i, k = sum_j k_j (q_i: input i's contribution vector, biases included). The attention
score is bilinear, score = q . k / sqrt(d_head) = sum_ij q_i . k_j / sqrt(d_head), so it splits
exactly into pairs (query-side input, key-side input). The OV side is what `LinearGraph.attribute`
computes (patterns frozen); this is the QK side, kept separate as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interpwidgets.circuits.graph import Node
from interpwidgets.circuits.linear_graph import LinearGraph


@dataclass
class QKAttribution:
    """score == pairs.sum() (up to float rounding).

    query_nodes, key_nodes: inputs with a nonzero query (key) contribution; their `effect` is their
        contribution to the score with the other side taken whole (q_i . k / scale, q . k_j / scale).
    pairs: `[n_query, n_key]` contribution of each (query input, key input) pair.
    """

    layer: int
    head: int
    query_position: int
    key_position: int
    score: float
    query_nodes: list[Node]
    key_nodes: list[Node]
    pairs: torch.Tensor

    def top_pairs(self, k: int = 10) -> list[tuple[Node, Node, float]]:
        """The `k` pairs with the largest |contribution|."""
        flat = self.pairs.flatten()
        idx = flat.abs().argsort(descending=True)[:k]
        n_key = self.pairs.shape[1]
        return [(self.query_nodes[i // n_key], self.key_nodes[i % n_key], float(flat[i])) for i in idx.tolist()]


def qk_attribution(graph: LinearGraph, layer: int, head: int, query_position: int, key_position: int) -> QKAttribution:
    """Split head (`layer`, `head`)'s attention score from `query_position` to `key_position` into pairs of inputs."""
    cfg = graph.model.cfg
    if not 0 <= layer < graph.n_layers or not 0 <= head < cfg.n_heads:
        raise ValueError(f"(layer, head) = ({layer}, {head}) is outside the model's {graph.n_layers} layers x {cfg.n_heads} heads.")
    qp, kp = graph.position(query_position), graph.position(key_position)
    if kp > qp:
        raise ValueError(f"key_position {kp} is after query_position {qp}: a causal head cannot attend there.")
    q = graph.qk[f"q{layer}"][0, qp, head]  # [d_head]
    k = graph.qk[f"k{layer}"][0, kp, head]
    scale = cfg.d_head**0.5 if getattr(cfg, "use_attn_scale", True) else 1.0
    q_nodes, q_vecs = _vector_contributions(graph, q)
    k_nodes, k_vecs = _vector_contributions(graph, k)
    pairs = q_vecs @ k_vecs.T / scale  # [n_query, n_key]
    k_total, q_total = k_vecs.sum(0), q_vecs.sum(0)
    for node, vec in zip(q_nodes, q_vecs):
        node.effect = float(vec @ k_total / scale)
    for node, vec in zip(k_nodes, k_vecs):
        node.effect = float(q_total @ vec / scale)
    score = float((q.detach() @ k.detach()) / scale)
    return QKAttribution(layer, head, qp, kp, score, q_nodes, k_nodes, pairs)


def _vector_contributions(graph: LinearGraph, vector: torch.Tensor) -> tuple[list[Node], torch.Tensor]:
    """Inputs with a nonzero contribution to `vector` [d], and their contribution vectors `[n_inputs, d]`."""
    keys, table = graph.contribution_table(vector)
    return [graph.node(*key) for key in keys], table.double()
