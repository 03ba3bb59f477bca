"""Sites: the places where a feature circuit splits an activation into SAE features plus an error term.

A site is one hook with its SAE: the output of layer L's attention ("attn L", hook
`blocks.L.hook_attn_out`), MLP ("mlp L", `blocks.L.hook_mlp_out`) or residual stream ("resid L",
`blocks.L.hook_resid_post`), plus the embedding ("embed", `blocks.0.hook_resid_pre`), which has no
SAE and is one vector-valued node per position. At every site

    x = decode(f) + err,    f = encode(x) [..., d_sae],    err = x - decode(f) [..., d_model]

so splicing the SAE with its error term leaves the model's output unchanged (Marks et al. 2024).
Node columns of a site: the `d_sae` features, then the error (the embed site has only that column).
Node values live on the SAE's device and in its dtype (e.g. float32 SAEs on a bfloat16 model); hooks
cast what they hand back to the model to the activation's dtype.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from interpwidgets.sae.hooks import to_dictionary

EMBED_HOOK = "blocks.0.hook_resid_pre"
SITE_HOOKS = {"attn": "blocks.{layer}.hook_attn_out", "mlp": "blocks.{layer}.hook_mlp_out", "resid": "blocks.{layer}.hook_resid_post"}
SITE_KINDS = ("resid", "attn", "mlp")
_ORDER = {"attn": 0, "mlp": 1, "resid": 2}


@dataclass(frozen=True, eq=False)
class Site:
    """One hook and the SAE that decomposes it (`sae` is None for the embedding site)."""

    kind: str
    layer: int
    hook: str
    sae: torch.nn.Module | None

    @property
    def name(self) -> str:
        return "embed" if self.kind == "embed" else f"{self.kind}{self.layer}"

    @property
    def n_features(self) -> int:
        return 0 if self.sae is None else int(self.sae.cfg.d_sae)

    @property
    def n_columns(self) -> int:
        """Node columns: features, then the error term."""
        return self.n_features + 1

    def to_sae(self, x: torch.Tensor) -> torch.Tensor:
        """`x` on the SAE's device and in its dtype (unchanged at the embed site)."""
        return x if self.sae is None else to_dictionary(self.sae, x)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f [..., d_sae], err [..., d_model]) with `x == decode(f) + err`, in the SAE's dtype."""
        if self.sae is None:
            return x.new_zeros(*x.shape[:-1], 0), x
        x = self.to_sae(x)
        f = self.sae.encode(x)
        return f, x - self.sae.decode(f)

    def join(self, f: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
        """decode(f) + err: the activation these node values make (in the SAE's dtype)."""
        return err if self.sae is None else self.sae.decode(f) + err

    def zero_patch(self, x: torch.Tensor) -> torch.Tensor:
        """The activation `x` would be with every node of this site at zero (f = 0, err = 0): decode(0) = b_dec."""
        if self.sae is None:
            return torch.zeros_like(x)
        err = self.to_sae(torch.zeros_like(x))
        return self.join(err.new_zeros(*x.shape[:-1], self.n_features), err).to(x)

    def feature_grad(self, grad_x: torch.Tensor) -> torch.Tensor:
        """d m / d f `[..., d_sae]` from d m / d x `[..., d_model]`, since x = f @ W_dec + b_dec + err."""
        return self.to_sae(grad_x) @ self.sae.W_dec.T if self.sae is not None else grad_x.new_zeros(*grad_x.shape[:-1], 0)


def resolve_sites(model, saes, kinds: Sequence[str] = SITE_KINDS, embed: bool = True) -> list[Site]:
    """The sites of every layer for `kinds`, in forward order (embed, then attn, mlp, resid of each layer).

    Raises a ValueError naming every hook that has no SAE in `saes` (a dict keyed by input hook name).
    """
    unknown = [k for k in kinds if k not in SITE_HOOKS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {SITE_KINDS}; got {list(kinds)}.")
    d_model = model.cfg.d_model
    sites: list[Site] = [Site("embed", 0, EMBED_HOOK, None)] if embed else []
    missing: list[str] = []
    for layer in range(model.cfg.n_layers):
        for kind in sorted(kinds, key=_ORDER.get):
            hook = SITE_HOOKS[kind].format(layer=layer)
            sae = saes.get(hook) if saes is not None else None
            if sae is None:
                missing.append(hook)
                continue
            if getattr(sae, "is_transcoder", False):
                raise ValueError(f"The dictionary at {hook!r} is a transcoder; a feature circuit needs an SAE there.")
            if sae.cfg.d_in != d_model or sae.cfg.d_out != d_model:
                raise ValueError(f"The SAE at {hook!r} has d_in={sae.cfg.d_in}, d_out={sae.cfg.d_out}; the model's d_model is {d_model}.")
            sites.append(Site(kind, layer, hook, sae))
    if missing:
        raise ValueError(
            f"A feature circuit over {list(kinds)} needs an SAE at every layer; missing: {missing}. "
            "Train them (iw.sae.train), load them, or pass kinds=... to leave a component kind out."
        )
    return sites


def site_by_name(sites: Iterable[Site]) -> dict[str, Site]:
    return {s.name: s for s in sites}


def root_hook(x: torch.Tensor, hook=None) -> torch.Tensor:
    """Forward hook that makes the embedding a fresh leaf requiring grad, so gradients reach every
    later site even when the model's parameters are frozen."""
    return x.detach().requires_grad_(True)


def check_metric(value, where: str = "metric") -> torch.Tensor:
    """`value` as a differentiable scalar tensor, or a ValueError that says what is wrong with it."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"The {where} must return a torch scalar tensor computed from the model's output; got {type(value).__name__}.")
    if value.numel() != 1:
        raise ValueError(
            f"The {where} must return one number (e.g. a mean over prompts); got shape {tuple(value.shape)}. "
            "Reduce it with .mean()."
        )
    if not value.is_floating_point():
        raise ValueError(f"The {where} returned a {value.dtype} tensor; it must be a float computed differentiably from the output.")
    if torch.is_grad_enabled() and not value.requires_grad:
        raise ValueError(
            f"The {where} is not differentiable: its value does not depend on the model's output through "
            "differentiable operations (e.g. it uses argmax, comparisons, .item() or .detach()). "
            "Attribution needs a differentiable metric such as a logit difference."
        )
    return value.reshape(())
