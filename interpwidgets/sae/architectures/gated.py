"""Gated dictionary (Rajamanoharan et al. 2024): a gate decides which latents fire, a magnitude path how much.

    gate_pre = x_c @ W_enc + b_enc                        (b_enc is SAELens's `b_gate`)
    mag_pre  = x_c @ (W_enc * exp(r_mag)) + b_mag         (= encode_pre(x))
    f        = (gate_pre > 0) * relu(mag_pre)

where x_c = x - b_dec for an SAE. Training: L1 on relu(gate_pre) (decoder rows at unit norm) plus
the auxiliary loss that reconstructs the target from relu(gate_pre) through a frozen decoder.
SAELens calls b_enc `b_gate`. SAELens has no gated transcoder: ours save under "gated" with `d_out`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from interpwidgets.sae.base import ENCODER_INIT_SCALE, SAE


class GatedSAE(SAE):
    architecture = "gated"
    default_sparsity = 4.0
    saelens_name = "gated"
    param_renames = {"b_enc": "b_gate"}
    resample_params = {"b_enc": "zero", "r_mag": "zero", "b_mag": "zero"}

    def __init__(self, cfg):
        super().__init__(cfg)
        self.r_mag = nn.Parameter(torch.zeros(cfg.d_sae))  # [d_sae]
        self.b_mag = nn.Parameter(torch.zeros(cfg.d_sae))  # [d_sae]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        super().reset_parameters(generator)
        if hasattr(self, "r_mag"):  # the gate starts small; the magnitude path at the decoder's scale
            self.r_mag.fill_(-math.log(ENCODER_INIT_SCALE))
            self.b_mag.zero_()

    def _centred(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.b_dec if self.cfg.apply_b_dec_to_input else x

    def gate_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Gate pre-activations `[..., d_sae]`; a latent fires where this is positive."""
        return self._centred(x) @ self.W_enc + self.b_enc

    def encode_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Magnitude-path pre-activations `[..., d_sae]` (affine in x)."""
        return self._centred(x) @ (self.W_enc * self.r_mag.exp()) + self.b_mag

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        raise TypeError("A gated SAE's activations depend on its gate as well as its pre-activations: use encode(x).")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (self.gate_pre(x) > 0) * torch.relu(self.encode_pre(x))

    def training_outputs(self, x: torch.Tensor, target: torch.Tensor, sparsity_coefficient: float) -> dict[str, torch.Tensor]:
        gate = self.gate_pre(x)
        pre = self.encode_pre(x)
        f = (gate > 0) * torch.relu(pre)
        gate_acts = torch.relu(gate)
        via_gate = gate_acts @ self.W_dec.detach() + self.b_dec.detach()
        aux = (via_gate - target).pow(2).sum(-1).mean()
        l1 = gate_acts.sum(-1).mean()
        return {"feature_acts": f, "pre_acts": pre, "sparsity_loss": sparsity_coefficient * l1, "aux_loss": aux}
