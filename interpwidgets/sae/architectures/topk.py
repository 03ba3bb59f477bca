"""TopK dictionary (Gao et al. 2024): keep the k largest pre-activations of each token, then ReLU.

Sparsity is structural (no penalty); dead latents are revived by the trainer's AuxK loss. Decoder
rows are kept at unit norm during training. SAELens writes `k` in cfg.json; it has no TopK
transcoder, so ours save under the same name with `d_out` (and load here, not in SAELens).
"""

from __future__ import annotations

from typing import Any

import torch

from interpwidgets.sae.base import SAE


def topk_relu(pre: torch.Tensor, k: int) -> torch.Tensor:
    """`pre [..., d_sae]` with all but the k largest entries of each row zeroed, then ReLU."""
    values, indices = pre.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))


class TopKSAE(SAE):
    architecture = "topk"
    uses_k = True
    auxk = True
    saelens_name = "topk"

    def saelens_cfg_fields(self) -> dict[str, Any]:
        return {"k": self.cfg.k, "rescale_acts_by_decoder_norm": False}

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return topk_relu(pre, self.cfg.k)
