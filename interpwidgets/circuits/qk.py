"""QK attribution: which pairs of inputs make a head attend from one position to another (Ge et al. 2024).

With earlier attention patterns and the norm scales frozen (qk-norms included), a head's query at the
query position and its key at the key position are each affine in the linear graph's inputs (rotary
positions rotate them by a fixed, position-dependent linear map): q = sum_i q_i, k = sum_j k_j
(q_i: input i's contribution vector, biases included). The attention score is bilinear,
score = scaling * q . k = sum_ij scaling * q_i . k_j, so it splits exactly into pairs (query-side
input, key-side input). Grouped-query heads read the key of their key/value head. A soft-cap on the
scores (Gemma 2: cap * tanh(score / cap)) is not bilinear: the split is of the score before the cap.
The OV side is what `LinearGraph.attribute` computes (patterns frozen); this is the QK side, kept
separate as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from interpwidgets.circuits.graph import Node
from interpwidgets.circuits.linear_graph import LinearGraph


@dataclass
class QKAttribution:
    """score == pairs.sum() (up to float rounding).

    score: the head's attention score before any soft-cap (`capped_score` is what its softmax sees).
    key_head: the key/value head the query head reads (== head unless grouped-query attention).
    query_nodes, key_nodes: inputs with a nonzero query (key) contribution; their `effect` is their
        contribution to the score with the other side taken whole (scaling * q_i . k, scaling * q . k_j).
    pairs: `[n_query, n_key]` contribution of each (query input, key input) pair.
    soft_cap: the model's score soft-cap, or None.
    """

    layer: int
    head: int
    query_position: int
    key_position: int
    score: float
    query_nodes: list[Node]
    key_nodes: list[Node]
    pairs: torch.Tensor
    key_head: int
    soft_cap: float | None = None

    @property
    def capped_score(self) -> float:
        """The score the softmax sees: soft_cap * tanh(score / soft_cap), or score without a soft-cap."""
        return self.score if self.soft_cap is None else self.soft_cap * math.tanh(self.score / self.soft_cap)

    def top_pairs(self, k: int = 10) -> list[tuple[Node, Node, float]]:
        """The `k` pairs with the largest |contribution|."""
        flat = self.pairs.flatten()
        idx = flat.abs().argsort(descending=True)[:k]
        n_key = self.pairs.shape[1]
        return [(self.query_nodes[i // n_key], self.key_nodes[i % n_key], float(flat[i])) for i in idx.tolist()]


def qk_attribution(graph: LinearGraph, layer: int, head: int, query_position: int, key_position: int) -> QKAttribution:
    """Split head (`layer`, `head`)'s attention score from `query_position` to `key_position` into pairs of inputs.

    Raises ValueError for a key the head cannot see (after the query, or masked, e.g. outside a sliding
    window), and RuntimeError if the query's scores rebuilt from the graph do not give the head's pattern.
    """
    cfg = graph.model.cfg
    if not 0 <= layer < graph.n_layers or not 0 <= head < cfg.n_heads:
        raise ValueError(f"(layer, head) = ({layer}, {head}) is outside the model's {graph.n_layers} layers x {cfg.n_heads} heads.")
    qp, kp = graph.position(query_position), graph.position(key_position)
    if kp > qp:
        raise ValueError(f"key_position {kp} is after query_position {qp}: a causal head cannot attend there.")
    queries, keys = graph.qk[f"q{layer}"], graph.qk[f"k{layer}"]  # [1, seq, n_heads, d_head], [1, seq, n_kv_heads, d_head]
    key_head = head // (queries.shape[2] // keys.shape[2])
    q, k = queries[0, qp, head], keys[0, kp, key_head]  # [d_head]
    scaling = _score_scaling(graph.model, layer)
    cap = getattr(cfg, "attn_scores_soft_cap", None)
    cap = float(cap) if cap is not None and cap > 0 else None
    _check_against_pattern(graph, layer, head, qp, kp, keys[0, : qp + 1, key_head].detach() @ q.detach() * scaling, cap)
    q_nodes, q_vecs = _vector_contributions(graph, q)
    k_nodes, k_vecs = _vector_contributions(graph, k)
    pairs = q_vecs @ k_vecs.T * scaling  # [n_query, n_key]
    k_total, q_total = k_vecs.sum(0), q_vecs.sum(0)
    for node, vec in zip(q_nodes, q_vecs):
        node.effect = float(vec @ k_total * scaling)
    for node, vec in zip(k_nodes, k_vecs):
        node.effect = float(q_total @ vec * scaling)
    score = float(q.detach() @ k.detach()) * scaling
    return QKAttribution(layer, head, qp, kp, score, q_nodes, k_nodes, pairs, key_head, cap)


def _score_scaling(model, layer: int) -> float:
    """The factor the model multiplies q . k by: the Hugging Face attention's `scaling`, or 1 / `scale` of
    the native attention (the teaching model), else 1 / sqrt(d_head); GPT-2's optional 1 / (layer + 1)."""
    attn = model.blocks[layer].attn.original_component
    if hasattr(attn, "scaling"):
        scaling = float(attn.scaling)
    elif hasattr(attn, "scale"):
        scaling = 1.0 / float(attn.scale)
    else:
        scaling = model.cfg.d_head**-0.5
    return scaling / (layer + 1) if getattr(model.cfg, "scale_attn_by_inverse_layer_idx", False) else scaling


def _check_against_pattern(graph: LinearGraph, layer: int, head: int, qp: int, kp: int, scores: torch.Tensor,
                           cap: float | None) -> None:
    """Raise if key `kp` is masked for query `qp` (e.g. outside a sliding window: the model's recorded
    pre-softmax score is -inf there), or if the query's rebuilt scores `[qp + 1]` (before the soft-cap
    `cap`) do not give the head's recorded pattern."""
    recorded = graph.clean.get(f"blocks.{layer}.attn.hook_attn_scores")
    if recorded is not None and recorded[0, head, qp, kp] <= torch.finfo(recorded.dtype).min / 2:
        raise ValueError(f"Head {layer}.{head} cannot attend from position {qp} to {kp}: the key is masked there "
                         "(e.g. outside a sliding window).")
    pattern = graph.frozen[f"blocks.{layer}.attn.hook_pattern"][0, head, qp, : qp + 1]
    if cap is not None:
        scores = cap * torch.tanh(scores / cap)
    seen = pattern > 0  # the keys the head attends to (masked ones, and any that underflow, have 0)
    if not torch.allclose(torch.softmax(scores[seen], -1), pattern[seen].to(scores.dtype), atol=1e-4):
        raise RuntimeError(f"The scores rebuilt for head {layer}.{head} do not give its attention pattern: "
                           "QK attribution does not support this model's attention yet.")


def _vector_contributions(graph: LinearGraph, vector: torch.Tensor) -> tuple[list[Node], torch.Tensor]:
    """Inputs with a nonzero contribution to `vector` [d], and their contribution vectors `[n_inputs, d]`."""
    keys, table = graph.contribution_table(vector)
    return [graph.node(*key) for key in keys], table.double()
