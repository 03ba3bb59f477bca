"""Runs of the real model behind an attribution graph: faithfulness by ablation, and feature interventions.

Both splice every dictionary of the graph into the model (a transcoder's output replaces the MLP's, an
attention SAE's the attention's, each plus its error, so a run with nothing changed is the model itself) and
change what a node holds:

- `faithfulness(graph, kept)`: every feature and error outside `kept` is ablated (zero, or its mean over
  reference tokens), at every position, while the model runs for real (attention and norms recomputed, later
  features re-encoded from the ablated activations), and the metric is the graph's weighted logit targets:

      faithfulness = (m(kept) - m(nothing)) / (m(model) - m(nothing))
      completeness = (m(everything but kept) - m(nothing)) / (m(model) - m(nothing))

  as `iw.circuits.faithfulness` defines them for feature circuits (Marks et al. 2024), here for one prompt.
- `intervene(graph, {node: value})`: feature nodes set to values, like circuit-tracer's `feature_intervention`;
  `freeze_attention` holds attention patterns and normalisation scales at their clean values (the frozen parts of
  the graph's linear model) and `constrained_layers` holds those layers' features and errors at their clean values,
  so that with every layer constrained the change of each target is exactly the sum of the direct edges changed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from interpwidgets.circuits import influence as inf
from interpwidgets.circuits.linear_graph import PRE_CAP_LOGITS_HOOK, dictionary_site
from interpwidgets.interventions.hooks import hooked
from interpwidgets.models.tokens import top_tokens

ABLATIONS = ("zero", "mean")


@dataclass
class GraphFaithfulness:
    """Faithfulness and completeness of the kept nodes, and the four metric values they come from."""

    faithfulness: float
    completeness: float
    m_model: float
    m_kept: float
    m_complement: float
    m_empty: float
    n_nodes: int
    ablation: str


@dataclass
class GraphIntervention:
    """What the model outputs with some feature nodes set: the last position's logits `[vocab]` before and after,
    each logit target's value before and after, and every node's activation after (`[n]`, NaN for non-features)."""

    values: dict[str, float]
    logits_before: torch.Tensor
    logits_after: torch.Tensor
    targets_before: dict[str, float]
    targets_after: dict[str, float]
    activations_after: torch.Tensor
    top_before: list[tuple[str, float]]
    top_after: list[tuple[str, float]]


# ---- the spliced model -----------------------------------------------------------------------------
class _Splice:
    """Per dictionary ("mlp2", "attn0"): what each batch element keeps live, fills in, or is set to."""

    def __init__(self, graph, batch: int):
        lg = _require_linear(graph)
        self.lg, self.batch = lg, batch
        self.dictionaries = {f"mlp{layer}": tc for layer, tc in enumerate(lg.transcoders)}
        self.dictionaries.update({f"attn{layer}": sae for layer, sae in lg.attn_saes.items()})
        seq = lg.seq
        self.keep_features = {k: torch.ones(batch, seq, sae.d_sae, dtype=torch.bool, device=lg.tokens.device)
                              for k, sae in self.dictionaries.items()}
        self.keep_errors = {k: torch.ones(batch, seq, dtype=torch.bool, device=lg.tokens.device) for k in self.dictionaries}
        self.feature_fill = {k: torch.zeros(sae.d_sae, device=lg.tokens.device) for k, sae in self.dictionaries.items()}
        self.error_fill: dict[str, torch.Tensor] = {k: torch.zeros((), device=lg.tokens.device) for k in self.dictionaries}
        self.constrained: set[str] = set()
        self.overrides: list[tuple[str, int, int, float]] = []  # (dictionary, position, feature, value), all batch rows

    def hooks(self, record_pre_cap: dict | None = None, freeze: bool = False) -> list:
        lg = self.lg
        inputs: dict[str, torch.Tensor] = {}
        self.final: dict[str, torch.Tensor] = {}
        hooks = []
        if freeze:
            hooks += [(name, lambda x, hook, v=v: v.expand(self.batch, *v.shape[1:])) for name, v in lg.frozen.items()]
        for key, sae in self.dictionaries.items():
            _, read_at, write_at = dictionary_site(key)
            hooks.append((read_at, _keep(inputs, key)))
            hooks.append((write_at, self._writer(key, sae, inputs)))
        if record_pre_cap is not None and lg.logit_soft_cap is not None:
            hooks.append((PRE_CAP_LOGITS_HOOK, _keep(record_pre_cap, "logits")))
        return hooks

    def _writer(self, key: str, sae, inputs: dict):
        lg = self.lg

        def hook(out, hook):
            f_live = sae.encode(inputs[key])
            err_live = out - sae.decode(f_live)
            if key in self.constrained:
                f = lg.values[key].expand_as(f_live).clone()
                err = lg.values[f"{key}/error"].expand_as(err_live)
            else:
                f = torch.where(self.keep_features[key], f_live, self.feature_fill[key].to(f_live))
                err = torch.where(self.keep_errors[key][..., None], err_live, self.error_fill[key].to(err_live))
            for k, p, j, value in self.overrides:
                if k == key:
                    f[:, p, j] = value
            self.final[key] = f
            return sae.decode(f) + err
        return hook

    def run(self, *, freeze: bool = False) -> torch.Tensor:
        """Logits `[batch, seq, vocab]` (before the soft-cap on models that have one)."""
        lg = self.lg
        pre_cap: dict[str, torch.Tensor] = {}
        tokens = lg.tokens.expand(self.batch, -1)
        with torch.no_grad(), hooked(lg.model, self.hooks(pre_cap, freeze)), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="A forward hook edited hook_scale")
            logits = lg.model(tokens)
        return logits if lg.logit_soft_cap is None else pre_cap["logits"]


def _keep(store: dict, key: str):
    def hook(x, hook):
        store[key] = x
        return x
    return hook


def _require_linear(graph):
    if graph.linear is None:
        raise ValueError("This attribution graph was read from a file, so it holds no model to run: rebuild it with "
                         "iw.circuits.attribution_graph(model, saes, prompt) to measure faithfulness or intervene.")
    return graph.linear


def _dictionary_key(node) -> str:
    return f"{node.kind}{node.layer}"


# ---- the metric -----------------------------------------------------------------------------------
def target_values(graph, logits: torch.Tensor) -> torch.Tensor:
    """Each logit target of `graph` read off logits `[batch, seq, vocab]`: `[batch, n_targets]`."""
    columns = []
    for node in graph.logit_nodes:
        row = logits[:, node.position]
        f = node.feature
        if f == "direction":
            columns.append(row @ torch.tensor(graph.metadata["direction"]).to(row))
        elif isinstance(f, int):
            columns.append(row[:, f] - row.mean(-1))
        elif "-" in str(f):
            answer, wrong = (int(x) for x in str(f).split("-"))
            columns.append(row[:, answer] - row[:, wrong])
        else:
            columns.append(row[:, int(f)])
    return torch.stack(columns, -1)


def metric(graph, logits: torch.Tensor) -> torch.Tensor:
    """The graph's weighted logit targets `[batch]`: sum of weight * target."""
    weights = graph.logit_weights[graph.of_type("logit")].to(logits)
    return target_values(graph, logits) @ weights


# ---- faithfulness ---------------------------------------------------------------------------------
def faithfulness(graph, kept, *, ablation: str = "zero", reference: torch.Tensor | None = None) -> GraphFaithfulness:
    """Faithfulness and completeness of `kept` (a `Pruning` or node ids) by real ablation (module docstring)."""
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, got {ablation!r}.")
    ids = kept.node_ids if hasattr(kept, "node_mask") else list(kept)
    kept_idx = [graph.index(i) for i in ids]
    splice = _Splice(graph, 4)  # rows: model, kept, complement, nothing
    if ablation == "mean":
        _fill_means(splice, reference)
    for key in splice.dictionaries:
        splice.keep_features[key][1] = False
        splice.keep_features[key][3] = False
        splice.keep_errors[key][1] = False
        splice.keep_errors[key][3] = False
    n_kept = 0
    for i in kept_idx:
        node, t = graph.nodes[i], int(graph.node_type[i])
        if t == inf.FEATURE:
            key = _dictionary_key(node)
            splice.keep_features[key][1, node.position, node.feature] = True
            splice.keep_features[key][2, node.position, node.feature] = False
        elif t == inf.ERROR:
            key = _dictionary_key(node)
            splice.keep_errors[key][1, node.position] = True
            splice.keep_errors[key][2, node.position] = False
        else:
            continue
        n_kept += 1
    m = metric(graph, splice.run()).tolist()
    m_model, m_kept, m_complement, m_empty = m
    span = m_model - m_empty
    ratio = (lambda v: (v - m_empty) / span) if span != 0 else (lambda v: float("nan"))
    return GraphFaithfulness(ratio(m_kept), ratio(m_complement), m_model, m_kept, m_complement, m_empty, n_kept, ablation)


def _fill_means(splice: _Splice, reference: torch.Tensor | None) -> None:
    """Mean feature activations and errors of every dictionary over the reference tokens' positions."""
    if reference is None:
        raise ValueError("ablation='mean' needs reference= tokens [batch, seq] to take the means over (e.g. "
                         "iw.tasks.ioi(model, n=32).clean_tokens); or use ablation='zero'.")
    reference = torch.as_tensor(reference)
    if reference.ndim != 2 or reference.is_floating_point():
        raise ValueError(f"reference must be token ids [batch, seq], got {reference.dtype} {tuple(reference.shape)}.")
    lg = splice.lg
    store: dict[str, torch.Tensor] = {}
    hooks = []
    for key in splice.dictionaries:
        _, read_at, write_at = dictionary_site(key)
        hooks += [(read_at, _keep(store, key + "/in")), (write_at, _keep(store, key + "/out"))]
    with torch.no_grad(), hooked(lg.model, hooks):
        lg.model(reference.to(lg.tokens.device))
    with torch.no_grad():
        for key, sae in splice.dictionaries.items():
            f = sae.encode(store[key + "/in"])
            splice.feature_fill[key] = f.mean((0, 1))
            splice.error_fill[key] = (store[key + "/out"] - sae.decode(f)).mean((0, 1))


# ---- interventions --------------------------------------------------------------------------------
def intervene(graph, values: Mapping[str, float], *, relative: bool = False, freeze_attention: bool = True,
              constrained_layers: Iterable[int] | None = None, k: int = 5) -> GraphIntervention:
    """The model's output with feature nodes (or every feature of a supernode) set to `values` (with `relative`,
    multiplied by them: 0 ablates, 2 doubles); see the module docstring for the two kinds of freezing."""
    if not values:
        raise ValueError("values is empty: pass {node id or supernode name: value}.")
    lg = _require_linear(graph)
    splice = _Splice(graph, 1)
    if constrained_layers is not None:
        layers = {int(layer) for layer in constrained_layers}
        bad = sorted(layer for layer in layers if not 0 <= layer < lg.n_layers)
        if bad:
            raise ValueError(f"constrained_layers {bad} lie outside the model's {lg.n_layers} layers.")
        splice.constrained = {key for key in splice.dictionaries if dictionary_site(key)[0] in layers}
    applied: dict[str, float] = {}
    for name, value in values.items():
        members = graph.members(name)
        features = [m for m in members if int(graph.node_type[graph.index(m)]) == inf.FEATURE]
        if not features:
            raise ValueError(f"{name!r} holds no feature node to set (errors, tokens and biases cannot be set).")
        for m in features:
            node = graph.node(m)
            target = float(value) * (node.activation or 0.0) if relative else float(value)
            splice.overrides.append((_dictionary_key(node), node.position, int(node.feature), target))
            applied[m] = target
    logits = splice.run(freeze=freeze_attention)
    clean_logits = lg.logits_clean if lg.logit_soft_cap is None else lg.logits_pre_cap.detach()
    before = target_values(graph, clean_logits)[0].tolist()
    after = target_values(graph, logits)[0].tolist()
    names = [n.id for n in graph.logit_nodes]
    activations = torch.full((len(graph),), float("nan"))
    for i in graph.of_type("feature").tolist():
        node = graph.nodes[i]
        activations[i] = float(splice.final[_dictionary_key(node)][0, node.position, node.feature])
    last = lg.seq - 1
    return GraphIntervention(applied, clean_logits[0, last].detach(), logits[0, last], dict(zip(names, before)),
                             dict(zip(names, after)), activations, top_tokens(lg.model, clean_logits[0, last], k=k),
                             top_tokens(lg.model, logits[0, last], k=k))
