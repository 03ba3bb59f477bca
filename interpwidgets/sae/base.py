"""The dictionary interface shared by every SAE and transcoder architecture.

A dictionary reads activations `x [..., d_in]` at `cfg.hook_name` and writes a reconstruction
`[..., d_out]` of the activations at `cfg.hook_name_out` (a transcoder) or of `x` itself (an SAE,
`hook_name_out is None`, `d_out == d_in`):

    pre   = encode_pre(x) = (x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc     [..., d_sae]
    f     = encode(x)     = activation(pre)                                           [..., d_sae]
    x_hat = decode(f)     = f @ W_dec + b_dec                                         [..., d_out]

`apply_b_dec_to_input` follows SAELens: True by default for SAEs (the decoder bias is subtracted
from the input before encoding), always False for transcoders (their b_dec lives in the output
space). The gated architecture overrides `encode_pre` with its magnitude path (see `gated.py`).

For every architecture, wherever a feature is active its activation equals its pre-activation:
`f == (f != 0) * encode_pre(x)`. So on the active set the map x -> f is affine, with Jacobian
`W_enc` restricted to the active latents (`W_enc * exp(r_mag)` for gated) — the property linear
computation graphs rely on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

ARCHITECTURES = ("relu", "topk", "batchtopk", "jumprelu", "gated")
ENCODER_INIT_SCALE = 0.1


@dataclass
class SAEConfig:
    """What a dictionary is and where it reads and writes.

    d_in:        width of the input activations (the hook's last dimension).
    d_sae:       number of latents.
    architecture: one of `ARCHITECTURES`.
    hook_name:   TransformerLens hook the input is read from, e.g. "blocks.2.hook_resid_post".
    hook_name_out: for a transcoder, the hook whose activations it reconstructs
                 (e.g. reads "blocks.2.ln2.hook_normalized", writes "blocks.2.hook_mlp_out");
                 None for an SAE.
    d_out:       width of the output (defaults to d_in).
    k:           latents kept per token (topk) or on average per token (batchtopk).
    apply_b_dec_to_input: subtract b_dec from the input before encoding (None: True for an SAE,
                 False for a transcoder, where it must be False).
    model_name:  the model the dictionary was trained on, if known.
    metadata:    free-form JSON-serialisable facts (training run, evaluation, provenance).
    """

    d_in: int
    d_sae: int
    architecture: str = "relu"
    hook_name: str = ""
    hook_name_out: str | None = None
    d_out: int | None = None
    k: int | None = None
    apply_b_dec_to_input: bool | None = None
    model_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"Unknown SAE architecture {self.architecture!r}; choose one of {ARCHITECTURES}.")
        for name in ("d_in", "d_sae"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"SAEConfig.{name} must be a positive integer, got {value!r}.")
        if self.d_out is None:
            self.d_out = self.d_in
        if self.hook_name_out is None and self.d_out != self.d_in:
            raise ValueError(
                f"d_out ({self.d_out}) differs from d_in ({self.d_in}) but hook_name_out is None: "
                "a dictionary with a different output width is a transcoder; give it hook_name_out."
            )
        if self.apply_b_dec_to_input is None:
            self.apply_b_dec_to_input = not self.is_transcoder
        elif self.apply_b_dec_to_input and self.is_transcoder:
            raise ValueError("apply_b_dec_to_input must be False for a transcoder (b_dec is in the output space).")
        if self.architecture in ("topk", "batchtopk"):
            if not isinstance(self.k, int) or not 0 < self.k <= self.d_sae:
                raise ValueError(f"architecture {self.architecture!r} needs an integer k in [1, d_sae], got {self.k!r}.")
        elif self.k is not None:
            raise ValueError(f"k applies only to topk and batchtopk dictionaries, not {self.architecture!r}; leave it None.")

    @property
    def is_transcoder(self) -> bool:
        return self.hook_name_out is not None

    @property
    def output_hook(self) -> str:
        """The hook whose activations this dictionary reconstructs."""
        return self.hook_name_out if self.hook_name_out is not None else self.hook_name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SAE(nn.Module):
    """Base class of every architecture: parameters, encode/decode, and the training hooks.

    Parameters: `W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_out]`, `b_dec [d_out]`
    (subclasses add their own, e.g. `threshold [d_sae]`). Subclasses implement `activation`.

    Training interface used by `interpwidgets.sae.training`: `training_outputs`, `post_step`,
    `remove_parallel_decoder_grad`, and the class attributes `normalize_decoder` (keep decoder rows
    at unit norm during training) and `lr_scale` (learning-rate multipliers by parameter name).
    """

    architecture: ClassVar[str] = ""
    normalize_decoder: ClassVar[bool] = True
    lr_scale: ClassVar[dict[str, float]] = {}  # per-parameter learning-rate multipliers for training

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        if cfg.architecture != self.architecture:
            raise ValueError(f"{type(self).__name__} needs architecture {self.architecture!r}, got {cfg.architecture!r}.")
        self.cfg = cfg
        self.W_enc = nn.Parameter(torch.empty(cfg.d_in, cfg.d_sae))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.W_dec = nn.Parameter(torch.empty(cfg.d_sae, cfg.d_out))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_out))
        self.reset_parameters()

    # ---- initialisation -------------------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random unit-norm decoder rows; encoder = `ENCODER_INIT_SCALE` x decoder transpose (tied init,
        Gao et al.; random directions for a transcoder), so that initial reconstructions are small
        rather than large and wrong — large early errors drive many latents dead."""
        W = torch.randn(self.cfg.d_sae, self.cfg.d_out, generator=generator)
        W /= W.norm(dim=-1, keepdim=True)
        self.W_dec.copy_(W)
        if self.cfg.is_transcoder:
            enc = torch.randn(self.cfg.d_in, self.cfg.d_sae, generator=generator)
            enc /= enc.norm(dim=0, keepdim=True)
        else:
            enc = W.T.clone()
        self.W_enc.copy_(ENCODER_INIT_SCALE * enc)
        self.b_enc.zero_()
        self.b_dec.zero_()

    # ---- the forward map --------------------------------------------------------------------
    @property
    def is_transcoder(self) -> bool:
        return self.cfg.is_transcoder

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    def encode_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations `[..., d_sae]` of `x [..., d_in]`; affine in x."""
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        """Feature activations `[..., d_sae]` from pre-activations (architecture-specific)."""
        raise NotImplementedError(f"{type(self).__name__} must implement activation().")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations `[..., d_sae]` of `x [..., d_in]`."""
        return self.activation(self.encode_pre(x))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction `[..., d_out] = f @ W_dec + b_dec` of feature activations `f [..., d_sae]`."""
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction `[..., d_out]` of `x [..., d_in]` (of the output hook for a transcoder)."""
        return self.decode(self.encode(x))

    # ---- training interface -----------------------------------------------------------------
    def training_outputs(self, x: torch.Tensor, target: torch.Tensor, sparsity_coefficient: float) -> dict[str, torch.Tensor]:
        """Everything one training step needs for inputs `x [batch, d_in]` and targets `target [batch, d_out]`.

        Returns "feature_acts" [batch, d_sae] (used for the reconstruction), "pre_acts" [batch, d_sae],
        "sparsity_loss" (scalar, already weighted by `sparsity_coefficient`; 0 where sparsity is
        structural, as for TopK) and "aux_loss" (scalar, an architecture's own auxiliary term).
        """
        pre = self.encode_pre(x)
        zero = pre.new_zeros(())
        return {"feature_acts": self.activation(pre), "pre_acts": pre, "sparsity_loss": zero, "aux_loss": zero}

    @torch.no_grad()
    def post_step(self) -> None:
        """Re-impose constraints after an optimiser step (unit-norm decoder rows where required)."""
        if self.normalize_decoder:
            self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Project out the part of W_dec's gradient along each (unit) decoder row before a step."""
        if self.normalize_decoder and self.W_dec.grad is not None:
            rows = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
            self.W_dec.grad.sub_((self.W_dec.grad * rows).sum(-1, keepdim=True) * rows)

    @torch.no_grad()
    def fold_input_output_scale(self, scale_in: float, scale_out: float) -> None:
        """Make a dictionary trained on `x * scale_in -> y * scale_out` act on raw `x -> y`.

        Pre-activations (and so feature activations and thresholds) are unchanged.
        """
        self.W_enc.mul_(scale_in)
        self.W_dec.div_(scale_out)
        self.b_dec.div_(scale_out)
        # with the bias subtracted at the input, b_dec enters the pre-activations as
        # -(b_dec_scaled @ W_enc_scaled) = -(b_dec / scale_out) @ (W_enc * scale_in): unchanged
        # because scale_in == scale_out for an SAE.

    def extra_repr(self) -> str:
        c = self.cfg
        io = f"{c.hook_name} -> {c.hook_name_out}" if c.is_transcoder else c.hook_name
        return f"{c.architecture}, d_in={c.d_in}, d_sae={c.d_sae}, d_out={c.d_out}, hook={io!r}"


_REGISTRY: dict[str, type[SAE]] = {}


def register(cls: type[SAE]) -> type[SAE]:
    """Class decorator: make `cls` the implementation of `cls.architecture`."""
    _REGISTRY[cls.architecture] = cls
    return cls


def sae_class(architecture: str) -> type[SAE]:
    """The SAE subclass implementing `architecture`."""
    # importing the architecture modules registers them
    from interpwidgets.sae import batchtopk, gated, jumprelu, relu, topk  # noqa: F401

    if architecture not in _REGISTRY:
        raise ValueError(f"Unknown SAE architecture {architecture!r}; choose one of {ARCHITECTURES}.")
    return _REGISTRY[architecture]


def build_sae(cfg: SAEConfig, seed: int | None = None) -> SAE:
    """A freshly initialised dictionary for `cfg` (deterministic when `seed` is given)."""
    cls = sae_class(cfg.architecture)
    sae = cls(cfg)
    if seed is not None:
        sae.reset_parameters(torch.Generator().manual_seed(seed))
    return sae
