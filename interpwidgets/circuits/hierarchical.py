"""Hierarchical attribution on a linear computation graph (Ge et al. 2024, section 3).

Start from a target (a logit difference or a feature's pre-activation) and its exact contributions.
Every contributor that is itself a feature (transcoder or attention-SAE feature) has an activation
equal to its pre-activation wherever it is active, which decomposes exactly into its own
contributions; so a feature u carrying attribution A_u passes A_u * c_v(u) / pre_u on to each of its
contributors v. Expanding the strongest contributors recursively, to a depth or until attributions
fall below a threshold, gives a circuit whose edges carry these flows.

Conservation: the attributions of the nodes left unexpanded plus the flows dropped by the
threshold add up to the target (`metadata["dropped"]` records the dropped part).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from interpwidgets.circuits.graph import Circuit, Edge
from interpwidgets.config import progress_enabled
from interpwidgets.circuits.linear_graph import FeatureTarget, LinearGraph, LogitTarget, Target

_KIND_STAGE = {"attn": 0, "mlp": 1}


def _stage(target: Target, n_layers: int) -> tuple[int, int]:
    """Computation order: a feature's contributors all have a smaller stage."""
    if isinstance(target, LogitTarget):
        return (n_layers, 0)
    return (target.layer, _KIND_STAGE[target.kind])


def hierarchical_attribution(
    graph: LinearGraph,
    target: Target,
    *,
    depth: int = 3,
    threshold: float = 0.05,
    top_k: int | None = None,
    max_expansions: int = 200,
    progress: bool | None = None,
) -> Circuit:
    """The circuit of `target` found by expanding contributors recursively.

    threshold: keep an edge when its flow is at least `threshold * |target value|`.
    top_k: keep at most this many contributors per expanded node (largest |flow| first).
    depth: expand features at most this many steps from the target. max_expansions: stop after
        expanding this many features.
    Node `effect` = the node's total attribution to the target; edges carry the flows. The circuit's
    `method` is "linear_graph"; its MLP nodes are transcoder features (`Node.dictionary` names the transcoder).
    `metadata["pre_cap"]`: the target is a logit taken before the model's soft-cap (see `Attribution`).
    """
    if depth < 0 or threshold < 0:
        raise ValueError(f"depth and threshold must be >= 0, got depth={depth}, threshold={threshold}.")
    root_value = float(graph.target_value(target).detach())
    root = graph.target_node(target, root_value)
    cut = threshold * abs(root_value)
    nodes = {root.id: root}
    attribution = {root.id: root_value}  # attribution not yet passed on to contributors
    depth_of = {root.id: 0}
    targets: dict[str, Target] = {root.id: target}
    pending: dict[tuple[int, int], list[str]] = {_stage(target, graph.n_layers): [root.id]}
    flows: dict[tuple[str, str], float] = {}
    dropped = 0.0
    expanded = 0
    bar = tqdm(total=max_expansions, desc="hierarchical attribution", disable=not progress_enabled(progress), leave=False)
    # a feature's contributors all sit at earlier stages, so expanding stage by stage, latest first,
    # expands each node only after every flow into it has arrived; one batched backward per stage
    while pending and expanded < max_expansions:
        stage = max(pending)
        uids = [u for u in pending.pop(stage)
                if depth_of[u] < depth and (u == root.id or abs(attribution[u]) >= cut)]
        uids = sorted(uids, key=lambda u: -abs(attribution[u]))[: max_expansions - expanded]
        if not uids:
            continue
        vector = torch.stack([graph.target_value(targets[u]) for u in uids])
        keys, table = graph.contribution_table(vector)  # [n_inputs, len(uids)]
        expanded += len(uids)
        bar.update(len(uids))
        for col, uid in enumerate(uids):
            column = table[:, col]
            pre_u = float(column.sum())
            if pre_u == 0.0:
                continue
            a_u = attribution[uid]
            scale = a_u / pre_u  # A_u / pre_u
            flow_col = column * scale
            order = flow_col.abs().argsort(descending=True)
            kept = [i for i in order.tolist() if abs(float(flow_col[i])) >= cut and float(flow_col[i]) != 0.0]
            if top_k is not None:
                kept = kept[:top_k]
            dropped += a_u - float(flow_col[kept].sum()) if kept else a_u
            attribution[uid] = 0.0  # passed on (the node keeps its total in `effect`)
            for i in kept:
                flow = float(flow_col[i])
                v = graph.node(*keys[i])
                if v.id not in nodes:
                    nodes[v.id] = v
                    attribution[v.id] = 0.0
                    depth_of[v.id] = depth_of[uid] + 1
                    if v.is_feature and v.kind in _KIND_STAGE:
                        t = FeatureTarget(v.kind, v.layer, v.feature, v.position)
                        targets[v.id] = t
                        pending.setdefault(_stage(t, graph.n_layers), []).append(v.id)
                depth_of[v.id] = min(depth_of[v.id], depth_of[uid] + 1)
                attribution[v.id] += flow
                flows[(v.id, uid)] = flows.get((v.id, uid), 0.0) + flow
    bar.close()
    total_in: dict[str, float] = {}
    for (src, _dst), w in flows.items():
        total_in[src] = total_in.get(src, 0.0) + w
    for nid, node in nodes.items():
        if nid != root.id:
            node.effect = total_in.get(nid, 0.0)
    unexpanded = sum(attribution.values())
    metadata = dict(
        target=root.id, target_value=root_value, depth=depth, threshold=threshold,
        top_k=top_k, n_layers=graph.n_layers, expanded=expanded, dropped=dropped,
        unexpanded=unexpanded, attn_saes=sorted(graph.attn_saes), pre_cap=graph.is_pre_cap(target),
    )
    if len(nodes) == 1:
        metadata["message"] = (f"No contribution reaches threshold={threshold} x |target| = {cut:.4g}; "
                               "lower the threshold to see the circuit.")
    edges = [Edge(src, dst, w) for (src, dst), w in flows.items()]
    return Circuit(list(nodes.values()), edges, metadata, method="linear_graph")
