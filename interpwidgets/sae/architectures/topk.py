"""TopK dictionary (Gao et al. 2024): keep the k largest pre-activations of each token, then ReLU.

Sparsity is structural (no penalty); dead latents are revived by the trainer's AuxK loss. Decoder
rows are kept at unit norm during training. SAELens name: "topk" (with `k`).
"""

from __future__ import annotations

import torch

from interpwidgets.sae.base import SAE, register


def topk_relu(pre: torch.Tensor, k: int) -> torch.Tensor:
    """`pre [..., d_sae]` with all but the k largest entries of each row zeroed, then ReLU."""
    values, indices = pre.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))


@register
class TopKSAE(SAE):
    architecture = "topk"

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return topk_relu(pre, self.cfg.k)
