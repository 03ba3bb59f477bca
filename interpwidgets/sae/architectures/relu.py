"""ReLU dictionary with an L1 penalty weighted by decoder norms (Cunningham et al. 2023).

f = relu(pre). Training penalty: coefficient * sum_i f_i * ||W_dec[i]||, so shrinking a decoder row
cannot buy a smaller penalty and the decoder needs no norm constraint. Dead latents are resampled.
"""

from __future__ import annotations

import torch

from interpwidgets.sae.base import SAE


class ReLUSAE(SAE):
    architecture = "relu"
    default_sparsity = 2.0
    normalize_decoder = False
    saelens_name = "standard"
    saelens_transcoder_name = "transcoder"

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)

    def training_outputs(self, x: torch.Tensor, target: torch.Tensor, sparsity_coefficient: float) -> dict[str, torch.Tensor]:
        pre = self.encode_pre(x)
        f = torch.relu(pre)
        l1 = (f * self.W_dec.norm(dim=-1)).sum(-1).mean()
        return {"feature_acts": f, "pre_acts": pre, "sparsity_loss": sparsity_coefficient * l1, "aux_loss": l1.new_zeros(())}
