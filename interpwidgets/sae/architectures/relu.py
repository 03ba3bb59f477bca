"""ReLU dictionary with an L1 penalty weighted by decoder norms (Cunningham et al. 2023).

f = relu(pre). Training penalty: coefficient * sum_i f_i * ||W_dec[i]||, so shrinking a decoder row
cannot buy a smaller penalty and the decoder needs no norm constraint. SAELens name: "standard"
("transcoder" when it is a transcoder).
"""

from __future__ import annotations

import torch

from interpwidgets.sae.base import SAE, register


@register
class ReLUSAE(SAE):
    architecture = "relu"
    normalize_decoder = False

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)

    def training_outputs(self, x: torch.Tensor, target: torch.Tensor, sparsity_coefficient: float) -> dict[str, torch.Tensor]:
        pre = self.encode_pre(x)
        f = torch.relu(pre)
        l1 = (f * self.W_dec.norm(dim=-1)).sum(-1).mean()
        return {"feature_acts": f, "pre_acts": pre, "sparsity_loss": sparsity_coefficient * l1, "aux_loss": l1.new_zeros(())}
