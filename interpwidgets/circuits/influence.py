"""Influence, pruning and graph scores of an attribution graph, on its sparse edge list.

An attribution graph is a DAG of `n` nodes with edges `src -> dst` of signed `weight` (the direct effect of
src on dst). Following circuit-tracer (Ameisen et al. 2025, "Circuit Tracing", methods section "Pruning"):

- the row-normalised adjacency `N[dst, src] = |w| / sum_src' |w(src' -> dst)|` says which fraction of a node's
  (absolute) inputs each source provides;
- the influence of a node on the output is `I = l @ (N + N^2 + N^3 + ...)`, with `l` the logit weights
  (the probabilities of the logit targets, zero elsewhere): summed over every path, how much of the weighted
  logits' input flows through the node. The series ends because the graph is acyclic;
- pruning keeps the nodes carrying `node_threshold` of the total influence (cumulatively, largest first; tokens
  and logits always), then, on the graph of kept nodes, the edges carrying `edge_threshold` of the total edge
  score `N'[dst, src] * (I'[dst] + l[dst])`, then drops, until nothing changes, feature, error and bias nodes
  with no kept outgoing edge and feature nodes with no kept incoming edge;
- the replacement score is the share of the sources' influence that comes from tokens and biases rather than
  errors; the completeness score is the influence-weighted mean, over nodes, of the share of each node's input
  that does not come from error nodes.

Here every function reads the graph as COO arrays (`src`, `dst`: `[E]` int64; `weight`: `[E]`) and node
types `[n]` (`NODE_TYPES` codes), so nothing dense `[n, n]` is ever built. Bias nodes (circuit-tracer has none)
count with the tokens as sources that are not errors but, unlike tokens, are pruned like error nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NODE_TYPES = ("feature", "error", "token", "bias", "logit")
FEATURE, ERROR, TOKEN, BIAS, LOGIT = range(len(NODE_TYPES))


def normalised_weights(dst: torch.Tensor, weight: torch.Tensor, n: int) -> torch.Tensor:
    """`|w| / (sum of |w| into the same dst)` per edge `[E]` (0 for a node whose inputs are all zero)."""
    absolute = weight.abs().to(torch.float64)
    into = torch.zeros(n, dtype=torch.float64, device=weight.device).index_add_(0, dst, absolute)
    return absolute / into[dst].clamp_min(1e-10)


def propagate(src: torch.Tensor, dst: torch.Tensor, normalised: torch.Tensor, start: torch.Tensor,
              max_iter: int = 10_000) -> torch.Tensor:
    """`start @ (N + N^2 + ...)` for the row-normalised adjacency given per edge: influence `[n]`."""
    total = torch.zeros_like(start, dtype=torch.float64)
    current = start.to(torch.float64)
    for _ in range(max_iter):
        current = torch.zeros_like(total).index_add_(0, src, current[dst] * normalised)
        if not bool(current.any()):
            return total
        total += current
    raise RuntimeError(f"Influence did not vanish after {max_iter} steps: the graph has a cycle.")


def influence(src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor, logit_weights: torch.Tensor) -> torch.Tensor:
    """Each node's influence on the weighted logits `[n]` (float64)."""
    return propagate(src, dst, normalised_weights(dst, weight, len(logit_weights)), logit_weights)


def find_threshold(scores: torch.Tensor, fraction: float) -> float:
    """The score above which the largest scores, taken in order, first reach `fraction` of the total."""
    ordered = scores.sort(descending=True).values
    total = ordered.sum()
    if not bool(total > 0):
        return float("inf")
    cumulative = ordered.cumsum(0) / total
    index = min(int(torch.searchsorted(cumulative, torch.tensor(fraction, dtype=cumulative.dtype))), len(ordered) - 1)
    return float(ordered[index])


def cumulative_scores(scores: torch.Tensor) -> torch.Tensor:
    """For each node, the fraction of the total influence held by the nodes at least as influential `[n]`
    (circuit-tracer's per-node "influence" in its graph files)."""
    order = scores.sort(descending=True)
    total = order.values.sum()
    out = torch.zeros_like(scores)
    out[order.indices] = order.values.cumsum(0) / total if bool(total > 0) else 0.0
    return out


@dataclass
class PruneMasks:
    node_mask: torch.Tensor  # [n] bool
    edge_mask: torch.Tensor  # [E] bool
    influence: torch.Tensor  # [n] node influence on the unpruned graph
    cumulative: torch.Tensor  # [n] cumulative influence fraction (see `cumulative_scores`)


def prune(src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor, node_type: torch.Tensor, logit_weights: torch.Tensor,
          node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PruneMasks:
    """Node and edge masks of the pruned graph (see the module docstring)."""
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1 (a fraction of the total influence), got {value}.")
    n = len(node_type)
    node_influence = influence(src, dst, weight, logit_weights)
    node_mask = node_influence >= find_threshold(node_influence, node_threshold)
    node_mask |= (node_type == TOKEN) | (node_type == LOGIT)
    live = node_mask[src] & node_mask[dst]
    pruned = torch.where(live, weight, torch.zeros_like(weight))
    normalised = normalised_weights(dst, pruned, n)
    pruned_influence = propagate(src, dst, normalised, logit_weights) + logit_weights.to(torch.float64)
    edge_scores = normalised * pruned_influence[dst]
    edge_mask = live & (edge_scores >= find_threshold(edge_scores[live], edge_threshold)) & (pruned != 0)
    needs_output = (node_type == FEATURE) | (node_type == ERROR) | (node_type == BIAS)
    needs_input = node_type == FEATURE
    while True:
        edge_mask &= node_mask[src] & node_mask[dst]
        has_output = torch.zeros(n, dtype=torch.bool, device=src.device)
        has_output[src[edge_mask]] = True
        has_input = torch.zeros(n, dtype=torch.bool, device=src.device)
        has_input[dst[edge_mask]] = True
        keep = node_mask & ~(needs_output & ~has_output) & ~(needs_input & ~has_input)
        if bool((keep == node_mask).all()):
            break
        node_mask = keep
    return PruneMasks(node_mask, edge_mask, node_influence, cumulative_scores(node_influence))


@dataclass(frozen=True)
class GraphScores:
    """replacement: share of the sources' influence from tokens and biases rather than errors (1 = no error
    reaches the logits); completeness: influence-weighted share of the nodes' inputs that are not errors."""

    replacement: float
    completeness: float


def scores(src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor, node_type: torch.Tensor,
           logit_weights: torch.Tensor) -> GraphScores:
    """Replacement and completeness scores of the graph (see the module docstring)."""
    n = len(node_type)
    normalised = normalised_weights(dst, weight, n)
    node_influence = propagate(src, dst, normalised, logit_weights)
    is_error = node_type == ERROR
    sources = (node_type == TOKEN) | (node_type == BIAS)
    error_influence = float(node_influence[is_error].sum())
    source_influence = float(node_influence[sources].sum())
    denominator = source_influence + error_influence
    replacement = source_influence / denominator if denominator > 0 else float("nan")
    error_share = torch.zeros(n, dtype=torch.float64, device=src.device).index_add_(
        0, dst, torch.where(is_error[src], normalised, torch.zeros_like(normalised)))
    output = node_influence + logit_weights.to(torch.float64)
    completeness = float(((1 - error_share) * output).sum() / output.sum()) if bool(output.sum() > 0) else float("nan")
    return GraphScores(replacement, completeness)
