"""Faithfulness and completeness of a feature circuit (Marks et al. 2024, section 3.2).

With m(H) the metric when every node outside H is ablated (set to its mean over the ablation
prompts at each position, or to zero) in one forward pass, site by site, each later site re-encoded
from the ablated activations:

    faithfulness(C) = (m(C) - m(empty)) / (m(M) - m(empty))
    completeness(C) = (m(M \\ C) - m(empty)) / (m(M) - m(empty))    (the complement's faithfulness)

m(M) is the full model (splicing with error terms changes nothing), m(empty) ablates every node.
A faithful circuit scores near 1; a complete one leaves a complement scoring near 0.
`ablate_nodes` is the same operation the other way round: the metric with a few nodes ablated and every
other node clean (what a click in `CircuitGraph` shows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from tqdm.auto import tqdm

from interpwidgets.circuits import passes
from interpwidgets.circuits.effects import NodeEffects, check_aggregation
from interpwidgets.circuits.graph import Circuit, Node
from interpwidgets.circuits.sites import EMBED_KIND, SITE_KINDS, SAESite, embed_site, resolve_sites, sae_site
from interpwidgets.config import progress_enabled
from interpwidgets.interventions.ablation import check_ablation
from interpwidgets.sae.editing import FEATURE_ABLATIONS
from interpwidgets.sae.sets import SAESet
from interpwidgets.tasks.metric import Metric, rescale


@dataclass
class Faithfulness:
    """Scores of one circuit and the four metric values they come from."""

    faithfulness: float
    completeness: float
    m_model: float
    m_circuit: float
    m_complement: float
    m_empty: float
    n_nodes: int


@dataclass
class FaithfulnessCurve:
    """Faithfulness and completeness of the top-n nodes by |effect|, for each n in `sizes`."""

    sizes: list[int]
    faithfulness: list[float]
    completeness: list[float]
    m_model: float
    m_empty: float

    def size_at(self, level: float = 0.8) -> int | None:
        """The smallest size whose faithfulness reaches `level` (None if none does)."""
        return next((n for n, f in zip(self.sizes, self.faithfulness) if f >= level), None)

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame({"n_nodes": self.sizes, "faithfulness": self.faithfulness, "completeness": self.completeness})

    def plot(self, ax=None, title: str | None = None):
        """Faithfulness and completeness against circuit size (log x axis); returns the axes."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(5, 3.2))[1]
        ax.plot(self.sizes, self.faithfulness, marker="o", ms=3, label="faithfulness")
        ax.plot(self.sizes, self.completeness, marker="o", ms=3, label="completeness (complement)")
        ax.axhline(0.8, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("nodes in circuit")
        ax.set_ylabel("score")
        if title:
            ax.set_title(title)
        ax.legend(fontsize=8)
        return ax


@dataclass(frozen=True)
class NodeAblation:
    """The task metric with every node clean, and with `nodes` ablated (each set to its `ablation` value)."""

    nodes: tuple[str, ...]
    ablation: str
    metric_clean: float
    metric_ablated: float

    @property
    def change(self) -> float:
        """metric_ablated - metric_clean."""
        return self.metric_ablated - self.metric_clean


class Ablator:
    """Runs the model with chosen nodes kept and all others ablated, for one task and set of sites."""

    def __init__(self, model, sites: Sequence[SAESite], tokens: torch.Tensor, metric: Metric, readout: str | None,
                 ablation: str, reference: torch.Tensor):
        check_ablation(ablation, FEATURE_ABLATIONS)
        self.model, self.sites, self.tokens, self.metric, self.readout = model, list(sites), tokens, metric, readout
        self.values = ablation_values(model, self.sites, reference, ablation)
        self.m_model = passes.metric_value(model, tokens, metric, readout=readout)

    @cached_property
    def m_empty(self) -> float:
        """The metric with every node of every site ablated."""
        return self.run({s.name: torch.zeros(s.n_columns, dtype=torch.bool) for s in self.sites})

    def run(self, keep: dict[str, torch.Tensor]) -> float:
        """The metric with nodes where `keep` is False ablated (`keep[site]`: bool [n_columns] or [seq, n_columns])."""
        return passes.metric_value(self.model, self.tokens, self.metric,
                                   passes.ablation_hooks(self.sites, keep, self.values), readout=self.readout)

    def score(self, keep: dict[str, torch.Tensor], n_nodes: int) -> Faithfulness:
        """The scores of the circuit of `n_nodes` nodes that `keep` selects (a summed node keeps every position)."""
        m_c = self.run(keep)
        m_comp = self.run({k: ~v for k, v in keep.items()})
        undefined = (f"m(model) = {self.m_model:.4g} equals m(empty) = {self.m_empty:.4g}: ablating every node does "
                     "not change the metric, so faithfulness is undefined for this task.")
        faithful, complete = (rescale(m, self.m_empty, self.m_model, undefined=undefined) for m in (m_c, m_comp))
        return Faithfulness(faithful, complete, self.m_model, m_c, m_comp, self.m_empty, n_nodes)


def ablation_values(model, sites: Sequence[SAESite], tokens: torch.Tensor, ablation: str) -> dict:
    """Per site (f, err): the mean over `tokens` at each position (`[seq, d_sae]`, `[seq, d_model]`), or zeros
    (`[d_sae]`, `[d_model]`, broadcast over positions; no forward pass)."""
    if ablation == "zero":
        return {s.name: (torch.zeros(s.n_features), torch.zeros(model.cfg.d_model)) for s in sites}
    _, xs = passes.site_activations(model, sites, tokens)
    with torch.no_grad():
        return {s.name: tuple(part.mean(0) for part in s.split(xs[s.name])) for s in sites}


def node_mask(nodes: Iterable[Node], sites: Sequence[SAESite], seq_len: int) -> dict[str, torch.Tensor]:
    """`{site: bool [seq, n_columns]}`: True for `nodes` (a summed node covers every position); the metric node
    is skipped. A ValueError for a node that does not belong to these sites and their SAEs."""
    by_name = {s.name: s for s in sites}
    keep = {s.name: torch.zeros(seq_len, s.n_columns, dtype=torch.bool) for s in sites}
    for n in nodes:
        if n.kind == "metric":
            continue
        site = by_name.get(n.place)
        if site is None:
            raise ValueError(
                f"Circuit node {n.id!r} lives at {n.place!r}, which is not among the sites evaluated "
                f"({sorted(by_name)}); evaluate with the same SAEs and kinds the circuit was built with."
            )
        if n.dictionary != (None if site.sae is None else site.hook):
            raise ValueError(f"Circuit node {n.id!r} belongs to the dictionary at {n.dictionary!r}, not to the SAE reading "
                             f"{site.hook!r}; only feature-circuit nodes (SAE features, errors, the embedding) split there.")
        if n.position is not None and not -seq_len <= n.position < seq_len:
            raise ValueError(f"Circuit node {n.id!r} is at position {n.position}, outside prompts of {seq_len} tokens.")
        keep[site.name][slice(None) if n.position is None else n.position, site.column(n.feature)] = True
    return keep


def _reference(task, reference: torch.Tensor | None) -> torch.Tensor:
    """The prompts mean ablation averages over: `reference`, by default the task's corrupt prompts."""
    return task.corrupt_tokens if reference is None else reference


def _ablator(model, saes, task, kinds, metric, readout, ablation, reference) -> Ablator:
    if not kinds:
        raise ValueError("This circuit has no SAE site kinds (Circuit.kinds): faithfulness ablates the nodes of a "
                         "feature circuit (iw.circuits.feature_circuit), not of a linear graph.")
    sites = resolve_sites(model, saes, kinds)
    return Ablator(model, sites, task.clean_tokens, metric or task.metric, readout, ablation,
                   _reference(task, reference))


def faithfulness(
    model, saes, task, circuit: Circuit, *, ablation: str = "mean", reference: torch.Tensor | None = None,
    metric: Metric | None = None, readout: str | None = None,
) -> Faithfulness:
    """Faithfulness and completeness of `circuit` on `task`.

    ablation: "mean" (nodes outside the circuit set to their per-position mean over `reference [batch, seq]`,
    default the task's corrupt prompts, as in the paper's code) or "zero". Sites are the kinds the circuit was
    built with (`circuit.kinds`).
    """
    abl = _ablator(model, saes, task, circuit.kinds, metric, readout, ablation, reference)
    return abl.score(node_mask(circuit.nodes, abl.sites, task.clean_tokens.shape[1]), len(circuit))


def ablate_nodes(
    model, saes, task, nodes: Iterable[Node], *, ablation: str = "mean", reference: torch.Tensor | None = None,
    metric: Metric | None = None, readout: str | None = None,
) -> NodeAblation:
    """The task metric on the clean prompts with `nodes` (of a feature circuit, e.g. `[circuit.node(id)]`)
    ablated and every other node clean.

    ablation: "mean" (each node set to its per-position mean over `reference [batch, seq]`, default the task's
    corrupt prompts) or "zero", as in `faithfulness`. Each node names its SAE (`Node.dictionary`), which must be
    in `saes`; transcoder features (of linear graphs) are ablated with `iw.sae.ablate_features` instead.
    """
    nodes = list(nodes)
    if any(n.kind == "metric" for n in nodes):
        raise ValueError("the metric node cannot be ablated; choose feature, error or embedding nodes.")
    if not nodes:
        raise ValueError("no nodes to ablate.")
    sites = _node_sites(model, saes, nodes)
    abl = Ablator(model, sites, task.clean_tokens, metric or task.metric, readout, ablation,
                  _reference(task, reference))
    ablated = node_mask(nodes, sites, task.clean_tokens.shape[1])
    return NodeAblation(tuple(n.id for n in nodes), ablation, abl.m_model, abl.run({k: ~v for k, v in ablated.items()}))


def _node_sites(model, saes, nodes: Sequence[Node]) -> list[SAESite]:
    """The sites `nodes` live at, each with the SAE in `saes` that its nodes name."""
    saes = SAESet.of(saes)
    sites: dict[str, SAESite] = {}
    for n in nodes:
        if n.place in sites:
            continue
        if n.kind == EMBED_KIND:
            sites[n.place] = embed_site()
            continue
        if n.kind not in SITE_KINDS or n.dictionary != SAESite(n.kind, n.layer, None).hook:
            raise ValueError(f"Node {n.id!r} is not a node of a feature circuit's SAE sites (its dictionary is "
                             f"{n.dictionary!r}); transcoder features of linear graphs are ablated with iw.sae.ablate_features.")
        sites[n.place] = sae_site(model, saes, n.kind, n.layer)
    return list(sites.values())


class _TopN:
    """Keep-masks of the circuits made of the top-n nodes by |effect|."""

    def __init__(self, effects: NodeEffects, sites: Sequence[SAESite], aggregation: str, seq: int):
        check_aggregation(aggregation)
        self.sites, self.aggregation, self.seq = list(sites), aggregation, seq
        self.scores = [effects.aggregated(s.name, aggregation).abs().flatten() for s in self.sites]
        flat = torch.cat(self.scores)
        self.total = flat.numel()
        self.order = flat.argsort(descending=True)

    def keep(self, n: int) -> dict[str, torch.Tensor]:
        if not 0 <= n <= self.total:
            raise ValueError(f"A circuit size must lie in [0, {self.total}] (the number of nodes), got {n}.")
        chosen = torch.zeros(self.total, dtype=torch.bool)
        chosen[self.order[:n]] = True
        keep, start = {}, 0
        for s, sc in zip(self.sites, self.scores):
            part = chosen[start:start + sc.numel()]
            start += sc.numel()
            keep[s.name] = part.reshape(self.seq, s.n_columns) if self.aggregation == "none" else part.expand(self.seq, s.n_columns)
        return keep


def _setup(model, saes, task, effects, aggregation, metric, readout, ablation, reference):
    if isinstance(effects, Circuit):
        aggregation = aggregation or effects.metadata.get("aggregation", "none")
        if effects.effects is None:
            raise ValueError("This circuit carries no node effects (e.g. it was loaded from JSON); pass the NodeEffects.")
        effects = effects.effects
    abl = _ablator(model, saes, task, effects.kinds, metric, readout, ablation, reference)
    return abl, _TopN(effects, abl.sites, aggregation or "none", task.clean_tokens.shape[1])


def faithfulness_curve(
    model, saes, task, effects: NodeEffects | Circuit, *, sizes: Sequence[int] | None = None,
    aggregation: str | None = None, ablation: str = "mean", reference: torch.Tensor | None = None,
    metric: Metric | None = None, readout: str | None = None, progress: bool | None = None,
) -> FaithfulnessCurve:
    """Faithfulness and completeness of the circuits made of the top-n nodes by |effect|.

    effects: the `NodeEffects` (or a circuit from `feature_circuit`, which carries them).
    sizes: circuit sizes to evaluate (default: about 12 sizes from 1 to all nodes, log-spaced).
    aggregation: "none" or "sum" (default: the circuit's, else "none"). ablation, reference: as in `faithfulness`.
    """
    abl, top = _setup(model, saes, task, effects, aggregation, metric, readout, ablation, reference)
    if sizes is None:
        sizes = sorted({int(round(v)) for v in torch.logspace(0, torch.log10(torch.tensor(float(top.total))), 12).tolist()})
    sizes = [int(n) for n in sizes]
    faith, comp = [], []
    for n in tqdm(sizes, desc="faithfulness curve", disable=not progress_enabled(progress), leave=False):
        r = abl.score(top.keep(n), n)
        faith.append(r.faithfulness)
        comp.append(r.completeness)
    return FaithfulnessCurve(list(sizes), faith, comp, abl.m_model, abl.m_empty)


def size_at_faithfulness(
    model, saes, task, effects: NodeEffects | Circuit, *, level: float = 0.8, aggregation: str | None = None,
    ablation: str = "mean", reference: torch.Tensor | None = None, metric: Metric | None = None,
    readout: str | None = None, progress: bool | None = None,
) -> Faithfulness | None:
    """The scores of the smallest top-n circuit whose faithfulness reaches `level` (n is its `n_nodes`), found
    by doubling then bisection over n (exact when faithfulness grows with n, the usual case); None if even
    all nodes stay below `level`."""
    abl, top = _setup(model, saes, task, effects, aggregation, metric, readout, ablation, reference)
    bar = tqdm(desc=f"size at faithfulness {level}", disable=not progress_enabled(progress), leave=False)
    cache: dict[int, Faithfulness] = {}

    def score(n: int) -> Faithfulness:
        if n not in cache:
            cache[n] = abl.score(top.keep(n), n)
            bar.update(1)
        return cache[n]

    hi = 1
    while hi < top.total and score(hi).faithfulness < level:
        hi = min(2 * hi, top.total)
    if score(hi).faithfulness < level:
        bar.close()
        return None
    lo = hi // 2  # below level (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if score(mid).faithfulness >= level:
            hi = mid
        else:
            lo = mid
    bar.close()
    return score(hi)
