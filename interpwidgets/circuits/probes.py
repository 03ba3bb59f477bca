"""Linear probes on pooled activations, to read a property off the model (and re-read it under an edit).

`probe_activations` runs the model as it is, so inside an intervention (e.g. `iw.sae.ablate_features`, the
edit of SHIFT, Marks et al. 2024, section 4) the activations reflect it; `LinearProbe` is a logistic
regression fit on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from interpwidgets.circuits.passes import record


def probe_activations(
    model, tokens: torch.Tensor, hook: str, pooling: str = "mean", batch_size: int = 64
) -> torch.Tensor:
    """`[batch, d]` activations at `hook` pooled over positions ("mean", or "last" position), without gradients.

    Runs the model as it is, so inside an intervention (e.g. `iw.sae.ablate_features`) the activations reflect it.
    """
    if pooling not in ("mean", "last"):
        raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}.")
    out = []
    for start in range(0, len(tokens), batch_size):
        _, acts = record(model, tokens[start:start + batch_size], [hook])
        out.append(acts[hook].mean(1) if pooling == "mean" else acts[hook][:, -1])
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
