"""JumpReLU dictionary (Rajamanoharan et al. 2024): f = pre * (pre > threshold), one threshold per latent.

Trained with an L0 penalty through straight-through estimators: the step function and the JumpReLU
get pseudo-derivatives with respect to the threshold from a rectangle kernel of width `BANDWIDTH`
(the paper's estimator); the gradient with respect to the pre-activations is the ordinary one.
Thresholds are kept positive. A resampled dead latent takes the mean threshold of the live ones.
"""

from __future__ import annotations

import torch
from torch import nn

from interpwidgets.sae.base import SAE

BANDWIDTH = 0.05  # kernel width, in units of the normalised training activations
INITIAL_THRESHOLD = 0.05
MIN_THRESHOLD = 1e-4


def _rectangle(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _Step(torch.autograd.Function):
    """H(pre - threshold); d/d threshold := -(1/eps) K((pre - threshold)/eps); no gradient to pre."""

    @staticmethod
    def forward(ctx, pre, threshold):
        ctx.save_for_backward(pre, threshold)
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        g = -_rectangle((pre - threshold) / BANDWIDTH) / BANDWIDTH * grad
        return None, g.reshape(-1, threshold.shape[-1]).sum(0)


class _JumpReLU(torch.autograd.Function):
    """pre * H(pre - threshold); d/d threshold := -(threshold/eps) K((pre - threshold)/eps)."""

    @staticmethod
    def forward(ctx, pre, threshold):
        ctx.save_for_backward(pre, threshold)
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        g_pre = (pre > threshold) * grad
        g_t = -(threshold / BANDWIDTH) * _rectangle((pre - threshold) / BANDWIDTH) * grad
        return g_pre, g_t.reshape(-1, threshold.shape[-1]).sum(0)


class JumpReLUSAE(SAE):
    architecture = "jumprelu"
    default_sparsity = 0.3
    saelens_name = "jumprelu"
    saelens_transcoder_name = "jumprelu_transcoder"
    resample_params = {"b_enc": "zero", "threshold": "mean_alive"}
    # Adam moves a parameter about lr per step whatever its gradient; thresholds must travel O(1)
    # in normalised units within a short run, so they learn faster than the weights.
    lr_scale = {"threshold": 20.0}

    def __init__(self, cfg):
        super().__init__(cfg)
        self.threshold = nn.Parameter(torch.full((cfg.d_sae,), INITIAL_THRESHOLD))  # [d_sae]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        super().reset_parameters(generator)
        if hasattr(self, "threshold"):
            self.threshold.fill_(INITIAL_THRESHOLD)

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return pre * (pre > self.threshold)

    def training_outputs(self, x: torch.Tensor, target: torch.Tensor, sparsity_coefficient: float) -> dict[str, torch.Tensor]:
        pre = self.encode_pre(x)
        f = _JumpReLU.apply(pre, self.threshold)
        l0 = _Step.apply(pre, self.threshold).sum(-1).mean()
        return {"feature_acts": f, "pre_acts": pre, "sparsity_loss": sparsity_coefficient * l0, "aux_loss": l0.new_zeros(())}

    @torch.no_grad()
    def post_step(self) -> None:
        super().post_step()
        self.threshold.clamp_(min=MIN_THRESHOLD)
