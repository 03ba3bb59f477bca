"""Faithfulness and completeness of a feature circuit (Marks et al. 2024, section 3.2).

With m(H) the metric when every node outside H is ablated (set to its mean over the ablation
prompts at each position, or to zero) in one forward pass, site by site, each later site re-encoded
from the ablated activations:

    faithfulness(C) = (m(C) - m(empty)) / (m(M) - m(empty))
    completeness(C) = (m(M \\ C) - m(empty)) / (m(M) - m(empty))    (the complement's faithfulness)

m(M) is the full model (splicing with error terms changes nothing), m(empty) ablates every node.
A faithful circuit scores near 1; a complete one leaves a complement scoring near 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from interpwidgets.circuits import runs
from interpwidgets.circuits.effects import NodeEffects, check_aggregation
from interpwidgets.circuits.graph import Circuit
from interpwidgets.circuits.sites import Site, resolve_sites

ABLATIONS = ("mean", "zero")


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


class Ablator:
    """Runs the model with chosen nodes kept and all others ablated, for one task and set of sites."""

    def __init__(self, model, sites: Sequence[Site], tokens: torch.Tensor, metric: Callable, readout: str | None,
                 ablation: str = "mean", ablation_tokens: torch.Tensor | None = None):
        if ablation not in ABLATIONS:
            raise ValueError(f"ablation must be one of {ABLATIONS}, got {ablation!r}.")
        self.model, self.sites, self.tokens, self.metric, self.readout = model, list(sites), tokens, metric, readout
        self.values = ablation_values(model, self.sites, ablation_tokens if ablation_tokens is not None else tokens, ablation)
        self.m_model = runs.metric_value(model, tokens, metric, readout=readout)
        self.m_empty = self.run({s.name: torch.zeros(s.n_columns, dtype=torch.bool) for s in self.sites})

    def run(self, keep: dict[str, torch.Tensor]) -> float:
        """The metric with nodes where `keep` is False ablated (`keep[site]`: bool [n_columns] or [seq, n_columns])."""
        return runs.metric_value(self.model, self.tokens, self.metric,
                                 runs.ablation_hooks(self.sites, keep, self.values), self.readout)

    def score(self, keep: dict[str, torch.Tensor]) -> Faithfulness:
        m_c = self.run(keep)
        m_comp = self.run({k: ~v for k, v in keep.items()})
        denom = self.m_model - self.m_empty
        if abs(denom) < 1e-8:
            raise ValueError(
                f"m(model) = {self.m_model:.4g} equals m(empty) = {self.m_empty:.4g}: ablating every node does not "
                "change the metric, so faithfulness is undefined for this task."
            )
        n = int(sum(int(v.sum()) for v in keep.values()))
        return Faithfulness((m_c - self.m_empty) / denom, (m_comp - self.m_empty) / denom,
                            self.m_model, m_c, m_comp, self.m_empty, n)


def ablation_values(model, sites: Sequence[Site], tokens: torch.Tensor, ablation: str) -> dict:
    """Per site (f `[seq, d_sae]`, err `[seq, d_model]`): the mean over `tokens` at each position, or zeros."""
    xs, _ = runs.record(model, sites, tokens)
    out = {}
    with torch.no_grad():
        for s in sites:
            f, err = s.split(xs[s.name])
            if ablation == "zero":
                out[s.name] = (torch.zeros_like(f[0]), torch.zeros_like(err[0]))
            else:
                out[s.name] = (f.mean(0), err.mean(0))
    return out


def circuit_mask(circuit: Circuit, sites: Sequence[Site], seq_len: int) -> dict[str, torch.Tensor]:
    """`{site: bool [seq, n_columns]}`: True for the circuit's nodes (a summed node keeps every position)."""
    by_name = {s.name: s for s in sites}
    keep = {s.name: torch.zeros(seq_len, s.n_columns, dtype=torch.bool) for s in sites}
    for n in circuit.nodes:
        if n.kind == "metric":
            continue
        name = "embed" if n.kind == "embed" else f"{n.kind}{n.layer}"
        if name not in by_name:
            raise ValueError(
                f"Circuit node {n.id!r} lives at {name!r}, which is not among the sites evaluated "
                f"({sorted(by_name)}); evaluate with the same SAEs and kinds the circuit was built with."
            )
        site = by_name[name]
        if n.feature == "error" or n.kind == "embed":
            column = site.n_features
        elif isinstance(n.feature, int) and 0 <= n.feature < site.n_features:
            column = n.feature
        else:
            raise ValueError(f"Circuit node {n.id!r} has feature {n.feature!r}, not a feature of the SAE at {site.hook!r}.")
        positions = slice(None) if n.position is None else n.position
        if n.position is not None and not -seq_len <= n.position < seq_len:
            raise ValueError(f"Circuit node {n.id!r} is at position {n.position}, outside prompts of {seq_len} tokens.")
        keep[name][positions, column] = True
    return keep


def _ablator(model, saes, task, circuit_kinds, metric, readout, ablation, ablation_tokens) -> Ablator:
    sites = resolve_sites(model, saes, circuit_kinds)
    if ablation_tokens is None and ablation == "mean":
        ablation_tokens = task.corrupt_tokens
    return Ablator(model, sites, task.clean_tokens, metric or task.metric, readout, ablation, ablation_tokens)


def faithfulness(
    model, saes, task, circuit: Circuit, *, ablation: str = "mean", metric: Callable | None = None,
    readout: str | None = None, ablation_tokens: torch.Tensor | None = None,
) -> Faithfulness:
    """Faithfulness and completeness of `circuit` on `task`.

    Nodes outside the circuit are mean-ablated over `ablation_tokens` (default: the task's corrupt
    prompts, as in the paper's code) or zero-ablated. Sites are the kinds the circuit was built with.
    """
    kinds = circuit.metadata.get("kinds", ["resid", "attn", "mlp"])
    abl = _ablator(model, saes, task, kinds, metric, readout, ablation, ablation_tokens)
    keep = circuit_mask(circuit, abl.sites, task.clean_tokens.shape[1])
    return abl.score(keep)


class _TopN:
    """Keep-masks of the circuits made of the top-n nodes by |effect|."""

    def __init__(self, effects: NodeEffects, sites: Sequence[Site], aggregation: str, seq: int):
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


def _setup(model, saes, task, effects, aggregation, metric, readout, ablation, ablation_tokens):
    if isinstance(effects, Circuit):
        aggregation = aggregation or effects.metadata.get("aggregation", "none")
        if effects.effects is None:
            raise ValueError("This circuit carries no node effects (e.g. it was loaded from JSON); pass the NodeEffects.")
        effects = effects.effects
    kinds = sorted({s.kind for s in effects.sites if s.kind != "embed"})
    abl = _ablator(model, saes, task, kinds, metric, readout, ablation, ablation_tokens)
    return abl, _TopN(effects, abl.sites, aggregation or "none", task.clean_tokens.shape[1])


def faithfulness_curve(
    model, saes, task, effects: NodeEffects | Circuit, *, sizes: Sequence[int] | None = None,
    aggregation: str | None = None, ablation: str = "mean", metric: Callable | None = None,
    readout: str | None = None, ablation_tokens: torch.Tensor | None = None, progress: bool = True,
) -> FaithfulnessCurve:
    """Faithfulness and completeness of the circuits made of the top-n nodes by |effect|.

    effects: the `NodeEffects` (or a circuit from `feature_circuit`, which carries them).
    sizes: circuit sizes to evaluate (default: about 12 sizes from 1 to all nodes, log-spaced).
    aggregation: "none" or "sum" (default: the circuit's, else "none").
    """
    abl, top = _setup(model, saes, task, effects, aggregation, metric, readout, ablation, ablation_tokens)
    if sizes is None:
        sizes = sorted({int(round(v)) for v in torch.logspace(0, torch.log10(torch.tensor(float(top.total))), 12).tolist()})
    sizes = [int(n) for n in sizes]
    faith, comp = [], []
    for n in tqdm(sizes, desc="faithfulness curve", disable=not progress, leave=False):
        r = abl.score(top.keep(n))
        faith.append(r.faithfulness)
        comp.append(r.completeness)
    return FaithfulnessCurve(list(sizes), faith, comp, abl.m_model, abl.m_empty)


def size_at_faithfulness(
    model, saes, task, effects: NodeEffects | Circuit, level: float = 0.8, *, aggregation: str | None = None,
    ablation: str = "mean", metric: Callable | None = None, readout: str | None = None,
    ablation_tokens: torch.Tensor | None = None, progress: bool = True,
) -> tuple[int | None, Faithfulness | None]:
    """The smallest n whose top-n circuit reaches faithfulness `level`, found by doubling then bisection
    over n (exact when faithfulness grows with n, the usual case), with that circuit's scores;
    (None, None) if even all nodes stay below `level`."""
    abl, top = _setup(model, saes, task, effects, aggregation, metric, readout, ablation, ablation_tokens)
    bar = tqdm(desc=f"size at faithfulness {level}", disable=not progress, leave=False)
    cache: dict[int, Faithfulness] = {}

    def score(n: int) -> Faithfulness:
        if n not in cache:
            cache[n] = abl.score(top.keep(n))
            bar.update(1)
        return cache[n]

    hi = 1
    while hi < top.total and score(hi).faithfulness < level:
        hi = min(2 * hi, top.total)
    if score(hi).faithfulness < level:
        bar.close()
        return None, None
    lo = hi // 2  # below level (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if score(mid).faithfulness >= level:
            hi = mid
        else:
            lo = mid
    bar.close()
    return hi, score(hi)
