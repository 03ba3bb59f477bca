"""Feature editing: ablate chosen SAE features while the model runs, and linear probes to re-evaluate.

`ablate_features` is the intervention of SHIFT (Marks et al. 2024, section 4), over any number of
SAEs and transcoders at once: the chosen features are set to zero (or to their per-position mean)
and everything else is kept, error terms included, so

    x -> x - (f[chosen] - value[chosen]) @ W_dec[chosen]

at each dictionary's output hook; later layers see the edited activations. It is an
`interventions.Intervention`: inside its context the model can be run for any metric, or
`probe_activations` read for a `LinearProbe`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from interpwidgets.circuits.graph import Circuit, Node
from interpwidgets.circuits.runs import device_of
from interpwidgets.interventions import Intervention
from interpwidgets.interventions.hooks import hooked
from interpwidgets.sae.hooks import to_dictionary

_KIND_HOOKS = {"resid": "blocks.{layer}.hook_resid_post", "attn": "blocks.{layer}.hook_attn_out",
               "mlp": "blocks.{layer}.hook_mlp_out"}


def features_by_hook(features, saes) -> dict[str, list[int]]:
    """`{input hook: [feature indices]}` from such a dict, a Circuit or an iterable of feature Nodes.

    A node of kind "mlp" means the MLP-output SAE if there is one at that layer, else the transcoder.
    """
    if isinstance(features, Mapping):
        return {hook: sorted({int(i) for i in idx}) for hook, idx in features.items()}
    nodes: Iterable[Node] = features.nodes if isinstance(features, Circuit) else features
    out: dict[str, set[int]] = {}
    for n in nodes:
        if not isinstance(n, Node):
            raise TypeError(f"features must be a dict {{hook: [indices]}}, a Circuit or Nodes; got an item of type {type(n).__name__}.")
        if not n.is_feature:
            continue
        hook = _KIND_HOOKS.get(n.kind, "").format(layer=n.layer)
        if n.kind == "mlp" and hook not in saes:
            hook = f"blocks.{n.layer}.ln2.hook_normalized"
        out.setdefault(hook, set()).add(int(n.feature))
    return {hook: sorted(idx) for hook, idx in out.items()}


def ablate_features(
    model,
    saes,
    features,
    mode: str = "zero",
    mean_tokens: torch.Tensor | None = None,
) -> Intervention:
    """An `Intervention` running the model with `features` ablated (zero or mean), error terms kept.

    features: `{input hook: [feature indices]}` (SAE or transcoder input hooks, as keys of `saes`),
        or a `Circuit`, or feature `Node`s (node positions are ignored: a feature is ablated everywhere).
    mode: "zero", or "mean" (the feature's mean activation over `mean_tokens [batch, seq]`, per position).
    Use it as a context manager (`with ablate_features(...): model(tokens)`), or `.run(tokens)`;
    compose it with other interventions by `+`. Its `features` attribute holds `{hook: indices}` ablated.
    """
    if mode not in ("zero", "mean"):
        raise ValueError(f"mode must be 'zero' or 'mean', got {mode!r}.")
    chosen = {h: idx for h, idx in features_by_hook(features, saes).items() if idx}
    if not chosen:
        raise ValueError("No features to ablate: `features` selects no SAE feature (error, embedding and bias nodes are not features).")
    for hook, idx in chosen.items():
        if hook not in saes:
            raise ValueError(f"No SAE reads {hook!r}; the SAESet has {sorted(saes)}.")
        d_sae = saes[hook].cfg.d_sae
        bad = [i for i in idx if not 0 <= i < d_sae]
        if bad:
            raise ValueError(f"Feature indices {bad[:5]} are outside the {d_sae} features of the SAE at {hook!r}.")
    if mode == "mean" and mean_tokens is None:
        raise ValueError("mode='mean' needs mean_tokens, the prompts to average feature activations over.")
    means = _mean_activations(model, saes, chosen, mean_tokens) if mode == "mean" else {}
    edits = []
    for hook, idx in chosen.items():
        sae = saes[hook]
        index = torch.tensor(idx, device=sae.W_dec.device)
        edits += _edits(sae, index, means.get(hook))
    n = sum(len(i) for i in chosen.values())
    intervention = Intervention(model, edits, f"{mode}-ablate {n} feature(s) at {len(chosen)} dictionar{'y' if len(chosen) == 1 else 'ies'}")
    intervention.features = chosen
    return intervention


def _edits(sae, index: torch.Tensor, mean: torch.Tensor | None) -> list:
    """Activation edits `(hook, fn(act) -> act)`: x - (f[chosen] - value[chosen]) @ W_dec[chosen] at the
    output hook, with f read at the input hook (the same hook for an SAE); value is 0 or the mean."""
    store: dict[str, torch.Tensor] = {}

    def read(x: torch.Tensor) -> torch.Tensor:
        store["f"] = sae.encode(to_dictionary(sae, x))
        return x

    def write(y: torch.Tensor) -> torch.Tensor:
        out = to_dictionary(sae, y)
        f = store.pop("f") if sae.is_transcoder else sae.encode(out)
        current = f[..., index]
        value = torch.zeros_like(current) if mean is None else mean[: current.shape[-2]].to(current)
        return (out - (current - value) @ sae.W_dec[index]).to(y)

    return ([(sae.cfg.hook_name, read)] if sae.is_transcoder else []) + [(sae.cfg.output_hook, write)]


def _mean_activations(model, saes, chosen: dict[str, list[int]], tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per hook `[seq, n_chosen]`: mean activation of each chosen feature over `tokens`, per position."""
    store: dict[str, torch.Tensor] = {}

    def make(hook_name: str):
        def hook(x, hook):
            sae = saes[hook_name]
            store[hook_name] = sae.encode(to_dictionary(sae, x))[..., chosen[hook_name]].mean(0)
            return x
        return hook

    with torch.no_grad(), hooked(model, [(h, make(h)) for h in chosen]):
        model(tokens.to(device_of(model)))
    return store


def probe_activations(
    model, tokens: torch.Tensor, hook: str, pooling: str = "mean", batch_size: int = 64
) -> torch.Tensor:
    """`[batch, d]` activations at `hook` pooled over positions ("mean", or "last" position), without gradients.

    Runs the model as it is, so inside `ablate_features` the activations reflect the ablation.
    """
    if pooling not in ("mean", "last"):
        raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}.")
    if hook not in model.hook_dict:
        raise ValueError(f"{hook!r} is not a hook of this model.")
    out = []
    store: dict[str, torch.Tensor] = {}

    def capture(x, hook):
        store["x"] = x
        return x

    with torch.no_grad(), hooked(model, [(hook, capture)]):
        for start in range(0, len(tokens), batch_size):
            model(tokens[start:start + batch_size].to(device_of(model)))
            x = store.pop("x")
            out.append(x.mean(1) if pooling == "mean" else x[:, -1])
    return torch.cat(out).float()


@dataclass
class LinearProbe:
    """A logistic-regression probe `sigmoid(acts @ weight + bias)` for a binary label.

    Fit with `LinearProbe.fit(acts [n, d], labels [n])` (L-BFGS, L2 penalty); the features are
    standardised with the training mean and std, kept in the probe.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, acts: torch.Tensor, labels: torch.Tensor, l2: float = 1e-3, max_iter: int = 200) -> "LinearProbe":
        acts, labels = _check_probe_data(acts, labels)
        mean, std = acts.mean(0), acts.std(0).clamp_min(1e-6)
        z = (acts - mean) / std
        w = torch.zeros(acts.shape[1], requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, labels) + l2 * (w @ w)
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return cls(w.detach(), b.detach(), mean, std)

    def logits(self, acts: torch.Tensor) -> torch.Tensor:
        """`[n]` logits (positive: label 1); differentiable in `acts`."""
        return ((acts - self.mean.to(acts)) / self.std.to(acts)) @ self.weight.to(acts) + self.bias.to(acts)

    def predict(self, acts: torch.Tensor) -> torch.Tensor:
        return (self.logits(acts) > 0).long()

    def accuracy(self, acts: torch.Tensor, labels: torch.Tensor) -> float:
        acts, labels = _check_probe_data(acts, labels)
        return float((self.predict(acts) == labels.long()).float().mean())


def _check_probe_data(acts: torch.Tensor, labels: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
    acts = torch.as_tensor(acts).float()
    labels = torch.as_tensor(labels).float()
    if acts.ndim != 2 or labels.shape != (acts.shape[0],):
        raise ValueError(f"A probe needs acts [n, d] and labels [n]; got {tuple(acts.shape)} and {tuple(labels.shape)}.")
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("Probe labels must be 0 or 1.")
    return acts, labels
