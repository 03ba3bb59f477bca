"""Edge effects between nodes of a feature circuit (Marks et al. 2024, section 2 and appendix).

The effect of an upstream node u on the metric through a downstream node d is

    IE(u -> d) ~ dm/dd . dd/du . (u_patch - u_clean),

with dm/dd the gradient used for the node effects (clean for atp, path-averaged for ig) and dd/du
the direct Jacobian at clean: every path from u to d through another site is cut by holding that
site's nodes at their clean values. That makes edges join only successive components (e.g.
resid_post L-1 -> attn L -> mlp L -> resid_post L, resid_post L-1 -> resid_post L), as in the paper, without subtracting
indirect paths afterwards. Computed in one forward pass where each site's output is rebuilt from
detached copies of its nodes ("leaves"), then one backward pass per downstream node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from interpwidgets.circuits import passes
from interpwidgets.circuits.effects import NodeEffects
from interpwidgets.circuits.sites import SAESite
from interpwidgets.config import progress_enabled
from interpwidgets.tasks.metric import Metric, check_finite, check_metric

METRIC = "metric"


@dataclass(frozen=True)
class NodeRef:
    """A node by site name, column (`SAESite.column`: a feature index, or the error's) and position (None: summed)."""

    site: str
    column: int
    position: int | None


class LeafPass:
    """The clean forward pass with every site's output rebuilt from detached node leaves.

    connected[site] = (f, err) computed from the site's input, still connected to upstream leaves;
    leaves[site] = (f, err) detached copies requiring grad, from which the site's output is rebuilt.
    `metric` is the metric of this pass (its gradient reaches only the last sites directly).
    """

    def __init__(self, model, sites: Sequence[SAESite], tokens: torch.Tensor, metric: Metric, readout: str | None):
        self.connected: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.leaves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

        def make(site: SAESite):
            def hook(x, hook):
                f, err = site.split(x)
                self.connected[site.name] = (f, err)
                leaf_f, leaf_err = f.detach().requires_grad_(True), err.detach().requires_grad_(True)
                self.leaves[site.name] = (leaf_f, leaf_err)
                return site.join(leaf_f, leaf_err).to(x)
            return hook

        with torch.enable_grad():
            out = passes.forward(model, tokens, [(s.hook, make(s)) for s in sites], readout=readout)
            self.metric = check_metric(metric(out), differentiable=True)


def edge_effects(
    model,
    effects: NodeEffects,
    nodes: Sequence[NodeRef],
    tokens: torch.Tensor,
    metric: Metric,
    *,
    readout: str | None = None,
    progress: bool | None = None,
) -> dict[tuple[NodeRef | str, NodeRef | str], float]:
    """`{(upstream, downstream): weight}` for every pair of `nodes` with a direct path, and
    `{(node, "metric"): weight}` for the nodes that reach the metric directly.

    All nodes must share one aggregation (all with a position, or all summed: position None).
    """
    if not nodes:
        return {}
    summed = {n.position is None for n in nodes}
    if len(summed) != 1:
        raise ValueError("Edge effects need all nodes per position or all summed over positions, not a mix.")
    summed = summed.pop()
    order = {s.name: i for i, s in enumerate(effects.sites)}
    by_site: dict[str, list[NodeRef]] = {}
    for n in nodes:
        by_site.setdefault(n.site, []).append(n)
    deltas = {name: effects.deltas(name) for name in by_site}
    leaf_pass = LeafPass(model, effects.sites, tokens, metric, readout)
    result: dict = {}

    def add_weights(targets: torch.Tensor, downstream: list) -> None:
        """Edges from every selected upstream node into each of `downstream` (one batched backward)."""
        first = order[downstream[0].site] if downstream[0] != METRIC else len(order)
        ups = [name for name in by_site if order[name] < first]
        if not ups:
            return
        inputs = [t for name in ups for t in leaf_pass.leaves[name]]
        eye = torch.eye(len(downstream), dtype=targets.dtype, device=targets.device)
        grads = torch.autograd.grad(targets, inputs, grad_outputs=eye, retain_graph=True,
                                    allow_unused=True, is_grads_batched=True)
        for i, name in enumerate(ups):
            gf, ge = grads[2 * i], grads[2 * i + 1]
            df, de = deltas[name]
            n = len(downstream)
            wf = (gf * df[None]).sum(1) if gf is not None else df.new_zeros(n, *df.shape[1:])
            we = (ge * de[None]).sum(-1).sum(1) if ge is not None else de.new_zeros(n, de.shape[1])
            per_pos = torch.cat([wf, we[..., None]], dim=-1)  # [n_downstream, seq, n_columns], as SAESite.columns
            into = "the metric" if downstream[0] == METRIC else f"site {downstream[0].site}"
            check_finite(per_pos, f"The edge weights from site {name} into {into}", dims=("downstream node", "position", "column"))
            refs = by_site[name]
            cols = torch.tensor([u.column for u in refs])
            if summed:
                w = per_pos.sum(1)[:, cols]  # [n_downstream, n_upstream]
            else:
                w = per_pos[:, torch.tensor([u.position for u in refs]), cols]
            for k, d in enumerate(downstream):
                for u, value in zip(refs, w[k].tolist()):
                    result[(u, d)] = value

    with torch.enable_grad():
        groups = [(name, refs) for name, refs in by_site.items() if effects.site(name).sae is not None]  # not the embedding
        chunk = _node_chunk(effects, leaf_pass)
        bar = tqdm(total=sum(len(r) for _, r in groups), desc="edges", disable=not progress_enabled(progress), leave=False)
        for name, refs in groups:
            site = effects.site(name)
            f, err = leaf_pass.connected[name]
            g = effects.grads[name]  # dm/dx [batch, seq, d_model]
            for start in range(0, len(refs), chunk):
                part = refs[start:start + chunk]
                add_weights(torch.stack([_downstream_target(site, d, f, err, g) for d in part]), part)
                bar.update(len(part))
        bar.close()
        add_weights(leaf_pass.metric[None], [METRIC])
    return result


def _downstream_target(site: SAESite, d: NodeRef, f: torch.Tensor, err: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """sum over prompts (and positions) of dm/dd * d, as a function of the upstream leaves."""
    positions = slice(None) if d.position is None else slice(d.position, d.position + 1)
    g = site.to_sae(g)
    if site.unit(d.column) != "error":
        left = g[:, positions] @ site.sae.W_dec[d.column]  # dm/df_j [batch, pos]
        return (left * f[:, positions, d.column]).sum()
    return (g[:, positions] * err[:, positions]).sum()


def _node_chunk(effects: NodeEffects, leaf_pass: LeafPass, budget: float = 2**28) -> int:
    """How many downstream nodes one batched backward may take within `budget` bytes of gradients."""
    per_node = sum(f.numel() + e.numel() for f, e in leaf_pass.leaves.values()) * 4
    return max(1, min(64, int(budget // max(per_node, 1))))
