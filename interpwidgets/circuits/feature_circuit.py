"""`feature_circuit`: a sparse feature circuit for a task (Marks et al. 2024).

Nodes are SAE features and SAE error terms at the residual stream, attention output and MLP output
of every layer (and the embedding), per position or summed over positions; node effects come from
attribution patching or integrated gradients (`effects.py`), edges between nodes of successive
components from `edges.py`. Nodes with |effect| >= node_threshold and edges with
|weight| >= edge_threshold make the circuit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interpwidgets.circuits.edges import METRIC, NodeRef, edge_effects
from interpwidgets.circuits.effects import NodeEffects, check_aggregation, node_effects
from interpwidgets.circuits.graph import Circuit, Edge, Node, node_id
from interpwidgets.circuits.sites import SITE_KINDS, SAESite, site_kinds
from interpwidgets.interventions.ablation import check_ablation
from interpwidgets.models.tokens import token_strings
from interpwidgets.tasks.metric import Metric

NODE_ABLATIONS = ("resample", "zero")
"""What each node is set to when its effect is measured (see `feature_circuit`)."""


def feature_circuit(
    model,
    saes,
    task,
    *,
    method: str | None = None,
    steps: int | None = None,
    kinds: Sequence[str] | None = None,
    ablation: str | None = None,
    aggregation: str = "none",
    node_threshold: float = 0.1,
    edge_threshold: float = 0.01,
    edges: bool = True,
    metric: Metric | None = None,
    readout: str | None = None,
    top_n: int | None = None,
    effects: NodeEffects | None = None,
    batch_budget_mb: float | None = None,
    progress: bool | None = None,
) -> Circuit:
    """The sparse feature circuit of `task` (a `Task`: clean/corrupt prompts and a metric).

    method: "ig" (integrated gradients, `steps` per site; default 10) or "atp" (attribution patching); default "ig".
    kinds: components whose SAEs give nodes (default all of `SITE_KINDS`: "resid_post" (alias "resid"), "attn",
        "mlp"; every layer needs an SAE for each kind). aggregation: "none" (a node per position) or "sum".
    ablation: what each node is set to when its effect is measured, in the vocabulary of
        `iw.interventions.ablate`: "resample" (default: its value on the paired corrupt prompt, i.e. resample
        ablation with the task's corrupt prompts as the reference) or "zero" (every node to zero). Effects
        are always of the change made in the clean run.
    metric(logits) -> scalar: defaults to `task.metric` (mean logit difference).
    top_n: keep the `top_n` nodes with the largest |effect| (among those above node_threshold).
    effects: node effects already computed for this task (e.g. `circuit.effects`), to re-threshold
        without recomputing them; `method`, `steps`, `kinds` and `ablation` are then those of the effects,
        and passing a different one raises a ValueError.
    batch_budget_mb: memory for each integrated-gradient pass (see `node_effects`); lower it to lower the peak.
    Returns a `Circuit` whose `effects` hold the dense node effects (for `faithfulness_curve`);
    if no node reaches `node_threshold` the circuit is empty and its `message` says so.
    """
    check_aggregation(aggregation)
    if ablation is not None:
        check_ablation(ablation, NODE_ABLATIONS)
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}.")
    metric = metric or task.metric
    if effects is None:
        ablation = ablation or "resample"
        effects = node_effects(model, saes, task.clean_tokens, task.corrupt_tokens if ablation == "resample" else None,
                               metric, method=method or "ig", steps=10 if steps is None else steps,
                               kinds=SITE_KINDS if kinds is None else kinds, readout=readout,
                               batch_budget_mb=batch_budget_mb, progress=progress)
    else:
        _check_agrees(effects, method=method, steps=steps, kinds=kinds, ablation=ablation)
    metadata = dict(
        task=getattr(task, "name", None), metric=getattr(metric, "__qualname__", str(metric)),
        steps=effects.steps, aggregation=aggregation, ablation=effects.ablation,
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
        return Circuit([], [], metadata, effects, effects.method, effects.kinds)
    weights = edge_effects(model, effects, refs, task.clean_tokens, metric, readout=readout, progress=progress) if edges else {}
    return build_circuit(model, effects, refs, weights, aggregation, edge_threshold, metadata, tokens=task.clean_tokens[0])


def _check_agrees(effects: NodeEffects, *, method, steps, kinds, ablation) -> None:
    """A ValueError naming every argument given explicitly that differs from what `effects` were computed with
    (`steps` only for "ig" effects: attribution patching takes none, as in `node_effects`)."""
    checks = {
        "method": (method, effects.method),
        "steps": (steps if effects.method == "ig" else None, effects.steps),
        "kinds": (None if kinds is None else tuple(sorted(site_kinds(kinds))), tuple(sorted(effects.kinds))),
        "ablation": (ablation, effects.ablation),
    }
    wrong = [f"{name}={given!r} (the effects have {stored!r})" for name, (given, stored) in checks.items()
             if given is not None and given != stored]
    if wrong:
        raise ValueError(f"feature_circuit(effects=...) re-thresholds the effects as they were computed, but got "
                         f"{', '.join(wrong)}; leave these arguments out, or recompute the effects.")


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


def ref_node(site: SAESite, ref: NodeRef) -> tuple[str, int | str | None]:
    """(node id, unit) of a node reference at `site`."""
    unit = site.unit(ref.column)
    return node_id(site.kind, site.layer, unit, ref.position), unit


def build_circuit(
    model,
    effects: NodeEffects,
    refs: Sequence[NodeRef],
    weights: dict,
    aggregation: str,
    edge_threshold: float,
    metadata: dict,
    tokens: torch.Tensor | None = None,
) -> Circuit:
    """A `Circuit` from selected node references and edge weights (edges below `edge_threshold` dropped);
    `tokens [seq]` (the first prompt) name the positions in labels."""
    n_layers = metadata.get("n_layers", 0)
    ids: dict[NodeRef, str] = {}
    nodes = []
    for ref in refs:
        site = effects.site(ref.site)
        ids[ref], unit = ref_node(site, ref)
        e = effects.aggregated(ref.site, aggregation)
        effect = float(e[ref.position, ref.column] if ref.position is not None else e[ref.column])
        dictionary = None if site.sae is None else site.hook
        nodes.append(Node(ids[ref], site.layer, site.kind, unit, ref.position,
                          _label(model, site, unit, ref.position, tokens), effect, dictionary=dictionary))
    # the metric node's effect: the total effect of the patch, m(patch) - m(clean), when known
    total = 0.0 if effects.metric_patch is None else effects.metric_patch - effects.metric_clean
    nodes.append(Node(METRIC, n_layers, "metric", label=str(metadata.get("task") or "metric"), effect=total))
    edges = [
        Edge(ids[u], METRIC if d == METRIC else ids[d], w)
        for (u, d), w in weights.items()
        if abs(w) >= edge_threshold and w != 0.0
    ]
    return Circuit(nodes, edges, metadata, effects, effects.method, effects.kinds)


def _label(model, site: SAESite, unit, position: int | None, tokens: torch.Tensor | None) -> str:
    """"resid_post2 #153 @7 ' Mary'", "attn1 error @3 ' the'", "resid_pre0 @4 ' John'"."""
    where = "" if position is None else f" @{position}"
    if position is not None and tokens is not None:
        where += f" {token_strings(model, [int(tokens[position])])[0]!r}"
    what = "" if unit is None else " error" if unit == "error" else f" #{unit}"
    return f"{site.name}{what}{where}"
