"""Synthetic activations with known sparse features in superposition (Sharkey et al. 2022).

`n_features` unit-norm directions in `d` dimensions (n_features > d), each active with a small
probability and a magnitude uniform in [0, 1]; optionally correlated through a Gaussian copula
(latent Gaussians with a random correlation matrix; feature i fires when its Gaussian falls in its
lower p_i tail) and with probabilities decaying across features. A dictionary that has learned
the features has a decoder row close to each true direction: `mean_max_cosine` measures that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SparseFeatures:
    """Ground-truth features `directions [n_features, d]` and per-feature firing probabilities `[n_features]`."""

    directions: torch.Tensor
    probabilities: torch.Tensor
    correlation_factor: torch.Tensor | None  # [n_features, rank] loadings of the copula, None: independent

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`(activations [n, d], coefficients [n, n_features])` for n samples."""
        n_features = len(self.probabilities)
        if self.correlation_factor is None:
            active = torch.rand(n, n_features, generator=generator) < self.probabilities
        else:
            loadings = self.correlation_factor
            rank = loadings.shape[1]
            own = (1 - loadings.pow(2).sum(-1)).clamp_min(0).sqrt()
            z = torch.randn(n, rank, generator=generator) @ loadings.T + torch.randn(n, n_features, generator=generator) * own
            active = torch.special.ndtr(z) < self.probabilities
        coefficients = active * torch.rand(n, n_features, generator=generator)
        return coefficients @ self.directions, coefficients


def make_sparse_features(
    d: int, n_features: int, mean_active: float, *, correlated: bool = False, decay: float = 0.0, seed: int = 0
) -> SparseFeatures:
    """Random unit directions; probabilities ∝ exp(-decay * i / n_features) with `mean_active` features firing on average."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(n_features, d, generator=g)
    directions /= directions.norm(dim=-1, keepdim=True)
    weights = torch.exp(-decay * torch.arange(n_features) / n_features)
    probabilities = (mean_active * weights / weights.sum()).clamp(max=1.0)
    factor = None
    if correlated:
        rank = max(1, n_features // 8)
        raw = torch.randn(n_features, rank, generator=g)
        factor = 0.7 * raw / raw.norm(dim=-1, keepdim=True)  # each latent Gaussian: 49% shared variance
    return SparseFeatures(directions, probabilities, factor)


def mean_max_cosine(learned: torch.Tensor, true: torch.Tensor) -> float:
    """Mean over true features `[n, d]` of the largest cosine similarity with any learned direction `[m, d]`."""
    a = true / true.norm(dim=-1, keepdim=True)
    b = learned / learned.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (a @ b.T).max(dim=1).values.mean().item()
