"""BatchTopK dictionary (Bussmann et al. 2024, after Gao et al. 2024).

Training keeps the `k * n_tokens` largest ReLU'd pre-activations over the whole batch, so tokens
share a budget of k latents on average. Inference cannot depend on the batch, so it uses a single
threshold: f = pre * (pre > threshold), exactly a JumpReLU with one shared threshold (how it is
saved in SAELens format: "jumprelu" with a `threshold` vector). During training the threshold
follows an exponential moving average of the smallest activation kept in each batch; at the end
the trainer calibrates it on recent training batches so that the mean L0 there is exactly k (the
moving average lags behind weights that are still changing). Dead latents are revived by AuxK.
SAELens's own "batchtopk" cfg.json name (a dictionary saved mid-training) reads as this class.
"""

from __future__ import annotations

import torch
from torch import nn

from interpwidgets.sae.base import SAE

THRESHOLD_EMA = 0.01  # weight of the newest batch in the threshold's moving average


def batch_topk_relu(pre: torch.Tensor, k: int) -> torch.Tensor:
    """`pre [n_tokens, d_sae]` with all but the `k * n_tokens` largest entries zeroed, then ReLU."""
    flat = torch.relu(pre).flatten()
    n_keep = min(k * pre.shape[0], flat.numel())
    values, indices = flat.topk(n_keep, sorted=False)
    return torch.zeros_like(flat).scatter(0, indices, values).view_as(pre)


class BatchTopKSAE(SAE):
    architecture = "batchtopk"
    uses_k = True
    auxk = True
    calibrates_threshold = True
    saelens_name = "jumprelu"
    saelens_transcoder_name = "jumprelu_transcoder"
    saelens_reads = {"batchtopk": False}  # "jumprelu" reads as JumpReLU unless our metadata says batchtopk

    def __init__(self, cfg):
        super().__init__(cfg)
        # [d_sae], all entries equal; a parameter (never trained) so it travels with the weights
        self.threshold = nn.Parameter(torch.zeros(cfg.d_sae), requires_grad=False)

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return pre * (pre > self.threshold)

    @torch.no_grad()
    def calibrate_threshold(self, x: torch.Tensor) -> None:
        """Set the threshold so that on inputs `x [n, d_in]` exactly k * n activations pass (mean L0 = k)."""
        pre = torch.relu(self.encode_pre(x)).flatten()
        n_keep = min(self.cfg.k * len(x), pre.numel() - 1)
        self.threshold.fill_(pre.kthvalue(pre.numel() - n_keep).values.item())

    def training_outputs(self, x: torch.Tensor, target: torch.Tensor, sparsity_coefficient: float) -> dict[str, torch.Tensor]:
        pre = self.encode_pre(x)
        f = batch_topk_relu(pre, self.cfg.k)
        with torch.no_grad():
            kept = f[f > 0]
            if kept.numel():
                self.threshold.mul_(1 - THRESHOLD_EMA).add_(THRESHOLD_EMA * kept.min())
        zero = pre.new_zeros(())
        return {"feature_acts": f, "pre_acts": pre, "sparsity_loss": zero, "aux_loss": zero}
