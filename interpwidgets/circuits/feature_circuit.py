"""`feature_circuit`: a sparse feature circuit for a task (Marks et al. 2024).

Nodes are SAE features and SAE error terms at the residual stream, attention output and MLP output
of every layer (and the embedding), per position or summed over positions; node effects come from
attribution patching or integrated gradients (`effects.py`), edges between nodes of successive
components from `edges.py`. Nodes with |effect| >= node_threshold and edges with
|weight| >= edge_threshold make the circuit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from interpwidgets.circuits.edges import METRIC, NodeRef, edge_effects
from interpwidgets.circuits.effects import NodeEffects, check_aggregation, node_effects
from interpwidgets.circuits.graph import Circuit, Edge, Node, node_id
from interpwidgets.circuits.sites import SITE_KINDS, Site


def feature_circuit(
    model,
    saes,
    task,
    *,
    method: str = "ig",
    steps: int = 10,
    kinds: Sequence[str] = SITE_KINDS,
    aggregation: str = "none",
    node_threshold: float = 0.1,
    edge_threshold: float = 0.01,
    edges: bool = True,
    patch: str = "corrupt",
    metric: Callable[[torch.Tensor], torch.Tensor] | None = None,
    readout: str | None = None,
    top_n: int | None = None,
    effects: NodeEffects | None = None,
    batch_budget_mb: float | None = None,
    progress: bool = True,
) -> Circuit:
    """The sparse feature circuit of `task` (a `Task`: clean/corrupt prompts and a metric).

    method: "ig" (integrated gradients, `steps` per site) or "atp" (attribution patching).
    kinds: components whose SAEs give nodes (all of "resid", "attn", "mlp" by default; every layer
        needs an SAE for each kind). aggregation: "none" (a node per position) or "sum".
    patch: "corrupt" (patch to the task's corrupt prompts) or "zero" (patch every node to zero).
    metric(logits) -> scalar: defaults to `task.metric` (mean logit difference).
    top_n: keep the `top_n` nodes with the largest |effect| (among those above node_threshold).
    effects: node effects already computed for this task (e.g. `circuit.effects`), to re-threshold
        without recomputing them.
    batch_budget_mb: memory for each integrated-gradient pass (see `node_effects`); lower it to lower the peak.
    Returns a `Circuit` whose `effects` hold the dense node effects (for `faithfulness_curve`);
    if no node reaches `node_threshold` the circuit is empty and its `message` says so.
    """
    check_aggregation(aggregation)
    if patch not in ("corrupt", "zero"):
        raise ValueError(f"patch must be 'corrupt' or 'zero', got {patch!r}.")
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}.")
    metric = metric or task.metric
    patch_tokens = task.corrupt_tokens if patch == "corrupt" else None
    if effects is None:
        effects = node_effects(model, saes, task.clean_tokens, patch_tokens, metric, method=method, steps=steps,
                               kinds=kinds, readout=readout, batch_budget_mb=batch_budget_mb, progress=progress)
    method, kinds = effects.method, sorted({s.kind for s in effects.sites if s.kind != "embed"})
    patch = "zero" if effects.zero_patch else "corrupt"
    metadata = dict(
        task=getattr(task, "name", None), metric=getattr(metric, "__qualname__", str(metric)), method=method,
        steps=effects.steps, kinds=list(kinds), aggregation=aggregation, patch=patch,
        node_threshold=node_threshold, edge_threshold=edge_threshold, top_n=top_n, n_layers=model.cfg.n_layers,
        n_prompts=len(task.clean_tokens), metric_clean=effects.metric_clean, metric_patch=effects.metric_patch,
    )
    refs = select_nodes(effects, aggregation, node_threshold, top_n)
    if not refs:
        largest = max(float(e.abs().max()) for e in (effects.aggregated(s.name, aggregation) for s in effects.sites))
        metadata["message"] = (
            f"No node has |effect| >= node_threshold={node_threshold} (the largest is {largest:.4g}); "
            "lower the threshold to get a circuit."
        )
        return Circuit([], [], metadata, effects)
    weights = edge_effects(model, effects, refs, task.clean_tokens, metric, readout, progress) if edges else {}
    return build_circuit(effects, refs, weights, aggregation, edge_threshold, metadata,
                         tokens=task.clean_tokens[0], tokenizer=getattr(model, "tokenizer", None))


def select_nodes(effects: NodeEffects, aggregation: str, threshold: float, top_n: int | None = None) -> list[NodeRef]:
    """Nodes with |effect| >= threshold (only the `top_n` largest, if given), site by site in forward order."""
    refs: list[tuple[float, NodeRef]] = []
    for site in effects.sites:
        e = effects.aggregated(site.name, aggregation)
        for idx in (e.abs() >= threshold).nonzero().tolist():
            ref = NodeRef(site.name, idx[1], idx[0]) if aggregation == "none" else NodeRef(site.name, idx[0], None)
            refs.append((abs(float(e[tuple(idx)])), ref))
    if top_n is not None:
        if top_n < 0:
            raise ValueError(f"top_n must be >= 0, got {top_n}.")
        keep = {id(r) for _, r in sorted(refs, key=lambda t: -t[0])[:top_n]}
        refs = [(v, r) for v, r in refs if id(r) in keep]
    return [r for _, r in refs]


def ref_node_id(site: Site, ref: NodeRef) -> str:
    if site.kind == "embed":
        return node_id("embed", position=ref.position)
    feature = ref.column if ref.column < site.n_features else "error"
    return node_id(site.kind, site.layer, feature, ref.position)


def build_circuit(
    effects: NodeEffects,
    refs: Sequence[NodeRef],
    weights: dict,
    aggregation: str,
    edge_threshold: float,
    metadata: dict,
    tokens: torch.Tensor | None = None,
    tokenizer=None,
) -> Circuit:
    """A `Circuit` from selected node references and edge weights (edges below `edge_threshold` dropped)."""
    n_layers = metadata.get("n_layers", 0)
    ids: dict[NodeRef, str] = {}
    nodes = []
    for ref in refs:
        site = effects.site(ref.site)
        ids[ref] = ref_node_id(site, ref)
        e = effects.aggregated(ref.site, aggregation)
        effect = float(e[ref.position, ref.column] if ref.position is not None else e[ref.column])
        feature = None if site.kind == "embed" else (ref.column if ref.column < site.n_features else "error")
        nodes.append(Node(ids[ref], site.layer, site.kind, feature, ref.position,
                          _label(site, feature, ref.position, tokens, tokenizer), effect))
    # the metric node's effect: the total effect of the patch, m(patch) - m(clean), when known
    total = 0.0 if effects.metric_patch is None else effects.metric_patch - effects.metric_clean
    nodes.append(Node(METRIC, n_layers, "metric", label=str(metadata.get("task") or "metric"), effect=total))
    edges = [
        Edge(ids[u], METRIC if d == METRIC else ids[d], w)
        for (u, d), w in weights.items()
        if abs(w) >= edge_threshold and w != 0.0
    ]
    return Circuit(nodes, edges, metadata, effects)


def _label(site: Site, feature, position: int | None, tokens: torch.Tensor | None, tokenizer) -> str:
    where = "" if position is None else f" @{position}"
    if position is not None and tokens is not None and tokenizer is not None:
        where += f" {tokenizer.decode([int(tokens[position])])!r}"
    if site.kind == "embed":
        return f"embed{where}"
    what = "error" if feature == "error" else f"#{feature}"
    return f"{site.kind} {site.layer} {what}{where}"
