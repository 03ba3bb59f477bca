"""The dictionary interface shared by every SAE and transcoder architecture.

A dictionary reads activations `x [..., d_in]` at `cfg.hook_name` and writes a reconstruction
`[..., d_out]` of the activations at `cfg.hook_name_out` (a transcoder) or of `x` itself (an SAE,
`hook_name_out is None`, `d_out == d_in`):

    pre   = encode_pre(x) = (x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc     [..., d_sae]
    f     = encode(x)     = activation(pre)                                           [..., d_sae]
    x_hat = decode(f)     = f @ W_dec + b_dec                                         [..., d_out]

`apply_b_dec_to_input` follows SAELens: True by default for SAEs (the decoder bias is subtracted
from the input before encoding), always False for transcoders (their b_dec lives in the output
space). An architecture may override `encode_pre` (e.g. with a separate magnitude path).

For every architecture, wherever a feature is active its activation equals its pre-activation:
`f == (f != 0) * encode_pre(x)`. So on the active set the map x -> f is affine, with Jacobian
`W_enc` (times any per-latent gain the architecture's `encode_pre` applies) restricted to the
active latents — the property linear computation graphs rely on.

This module knows no architecture: each is a subclass in `interpwidgets.sae.architectures`, whose
class attributes (documented on `SAE`) say what training, saving and loading need to know about it,
and that package's registry maps names to classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

ENCODER_INIT_SCALE = 0.1


@dataclass
class SAEConfig:
    """What a dictionary is and where it reads and writes.

    d_in:        width of the input activations (the hook's last dimension).
    d_sae:       number of latents.
    architecture: a registered architecture name (`interpwidgets.sae.architectures.ARCHITECTURES`).
    hook_name:   TransformerLens hook the input is read from, e.g. "blocks.2.hook_resid_post".
    hook_name_out: for a transcoder, the hook whose activations it reconstructs
                 (e.g. reads "blocks.2.ln2.hook_normalized", writes "blocks.2.hook_mlp_out");
                 None for an SAE.
    d_out:       width of the output (defaults to d_in).
    k:           latents kept per token (or on average per token), for architectures with `uses_k`;
                 None for the others.
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
        cls = SAE.implementation(self.architecture)  # ValueError naming the valid architectures
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
        cls.check_config(self)

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

    Training interface used by `interpwidgets.sae.trainer`: `training_outputs`, `post_step`,
    `remove_parallel_decoder_grad`, `calibrate_threshold`, and the class attributes below. Everything
    the rest of the package decides per architecture is one of these class attributes (or a method
    an architecture overrides); nothing outside an architecture's module compares its name.

    architecture:       the name `SAEConfig.architecture` gives and the registry keys it by.
    uses_k:             the config needs `k` (latents kept per token); the other architectures refuse one.
    default_sparsity:   sparsity coefficient used when training does not give one (the weight of the
                        penalty that `training_outputs` returns; 0 where sparsity is structural).
    normalize_decoder:  keep decoder rows at unit norm during training.
    lr_scale:           learning-rate multipliers by parameter name.
    auxk:               dead latents are revived by the trainer's AuxK loss (Gao et al. 2024); when
                        False they are resampled instead (see `resample_params`).
    resample_params:    what resampling a dead latent does to each latent-indexed parameter other than
                        W_enc and W_dec (which are always re-initialised towards badly reconstructed
                        inputs): "zero", or "mean_alive" (the mean over the live latents).
    calibrates_threshold: the inference `threshold` cannot be recovered from the other weights: the
                        trainer calls `calibrate_threshold(x)` on recent inputs at the end, and a saved
                        dictionary without a threshold is refused.
    saelens_name:       the `architecture` string SAELens writes in cfg.json for this SAE (None: `architecture`).
    saelens_transcoder_name: the same for a transcoder (None: `saelens_name`).
    saelens_reads:      cfg.json `architecture` strings read as this class, each mapped to whether it
                        marks a transcoder (None: the names it writes).
    param_renames:      our parameter names -> SAELens's, where they differ.
    """

    implementations: ClassVar[dict[str, type[SAE]]] = {}
    """Architecture name -> class; filled by `interpwidgets.sae.architectures.register` (this module names none)."""

    @staticmethod
    def implementation(architecture: str) -> type[SAE]:
        """The registered subclass implementing `architecture` (ValueError naming the valid ones if there is none)."""
        try:
            return SAE.implementations[architecture]
        except (KeyError, TypeError):
            raise ValueError(
                f"Unknown SAE architecture {architecture!r}; choose one of {tuple(SAE.implementations)}."
            ) from None

    architecture: ClassVar[str] = ""
    uses_k: ClassVar[bool] = False
    default_sparsity: ClassVar[float] = 0.0
    normalize_decoder: ClassVar[bool] = True
    lr_scale: ClassVar[dict[str, float]] = {}
    auxk: ClassVar[bool] = False
    resample_params: ClassVar[dict[str, str]] = {"b_enc": "zero"}
    calibrates_threshold: ClassVar[bool] = False
    saelens_name: ClassVar[str | None] = None
    saelens_transcoder_name: ClassVar[str | None] = None
    saelens_reads: ClassVar[dict[str, bool] | None] = None
    param_renames: ClassVar[dict[str, str]] = {}

    # ---- what the class says about itself ---------------------------------------------------
    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        """Raise a ValueError if `cfg` sets this architecture's own fields wrongly (called by `SAEConfig`)."""
        if cls.uses_k:
            if not isinstance(cfg.k, int) or not 0 < cfg.k <= cfg.d_sae:
                raise ValueError(f"architecture {cfg.architecture!r} needs an integer k in [1, d_sae], got {cfg.k!r}.")
        elif cfg.k is not None:
            raise ValueError(
                f"k (latents kept per token) applies only to architectures that keep a fixed number, not "
                f"{cfg.architecture!r}; leave it None."
            )

    @classmethod
    def saelens_architecture(cls, transcoder: bool) -> str:
        """The `architecture` string of this class's SAELens cfg.json (for a transcoder if `transcoder`)."""
        name = cls.saelens_name or cls.architecture
        return (cls.saelens_transcoder_name or name) if transcoder else name

    @classmethod
    def saelens_names_read(cls) -> dict[str, bool]:
        """{cfg.json `architecture` string: whether it marks a transcoder} for the names read as this class."""
        if cls.saelens_reads is not None:
            return dict(cls.saelens_reads)
        names = {cls.saelens_architecture(False): False}
        names.setdefault(cls.saelens_architecture(True), True)
        return names

    def saelens_cfg_fields(self) -> dict[str, Any]:
        """Top-level cfg.json entries this architecture adds to the common ones (e.g. `k`)."""
        return {}

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

    labels_reader: ClassVar[Callable[[SAE], Any] | None] = None
    """Makes a dictionary's `labels` on first use: `interpwidgets.sae.labels.read_labels`, registered by that module
    (which builds on this one, so this one does not import it)."""

    @property
    def labels(self) -> Any:
        """The features' short labels, an `interpwidgets.sae.labels.FeatureLabels` (a mapping {feature: label}): those
        in the labels.json beside the weights of a loaded dictionary (read on first use), else empty until
        `iw.sae.label_features` makes them."""
        labels = self.__dict__.get("_feature_labels")
        if labels is None:
            labels = self.__dict__["_feature_labels"] = SAE.labels_reader(self)
        return labels

    @labels.setter
    def labels(self, labels: Any) -> None:
        if getattr(labels, "d_sae", None) != self.cfg.d_sae:
            raise ValueError(f"sae.labels must be a FeatureLabels of d_sae={self.cfg.d_sae} "
                             f"(iw.sae.FeatureLabels({self.cfg.d_sae}, ...)), got {labels!r}.")
        self.__dict__["_feature_labels"] = labels

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
    def calibrate_threshold(self, x: torch.Tensor) -> None:
        """Set the inference threshold from inputs `x [n, d_in]` (architectures with `calibrates_threshold`)."""
        raise NotImplementedError(f"{type(self).__name__} has no threshold to calibrate.")

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

