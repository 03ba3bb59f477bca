"""SAE sites: the places where a feature circuit splits an activation into SAE features plus an error term.

A site is a place in the model with the SAE that reads it: layer L's attention output ("attn L", hook
`blocks.L.hook_attn_out`), MLP output ("mlp L", `blocks.L.hook_mlp_out`) or residual stream
("resid_post L", `blocks.L.hook_resid_post`), plus the embedding ("resid_pre0", `blocks.0.hook_resid_pre`),
which has no SAE and is one vector-valued node per position. A site's name is its place in the short-name
grammar of `interventions.components`, so `parse_component(site.name)` reads back the hook it splits. At
every site

    x = decode(f) + err,    f = encode(x) [..., d_sae],    err = x - decode(f) [..., d_model]

so splicing the SAE with its error term leaves the model's output unchanged (Marks et al. 2024).
Node columns of a site: the `d_sae` features, then the error (the embedding site has only that column).
Node values live on the SAE's device and in its dtype (e.g. float32 SAEs on a bfloat16 model); hooks
cast what they hand back to the model to the activation's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from interpwidgets.interventions.components import parse_component
from interpwidgets.sae.base import SAE
from interpwidgets.sae.inputs import to_dictionary
from interpwidgets.sae.sets import SAESet

SITE_KINDS = ("resid_post", "attn", "mlp")
"""The component kinds whose SAEs make a feature circuit's nodes ("resid" is read as "resid_post")."""
EMBED_KIND = "resid_pre"
_ALIASES = {"resid": "resid_post"}
_ORDER = {"attn": 0, "mlp": 1, "resid_post": 2}  # forward order inside a layer


def site_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """`kinds` in their canonical names ("resid" -> "resid_post"), or a ValueError naming the valid ones."""
    if isinstance(kinds, str):
        kinds = (kinds,)
    canonical = tuple(dict.fromkeys(_ALIASES.get(k, k) for k in kinds))
    if not canonical or any(k not in SITE_KINDS for k in canonical):
        raise ValueError(f"kinds must be a non-empty subset of {SITE_KINDS} ('resid' = 'resid_post'); got {list(kinds)}.")
    return canonical


@dataclass(frozen=True, eq=False)
class SAESite:
    """One place of the model and the SAE that decomposes it (`sae` is None at the embedding site)."""

    kind: str
    layer: int
    sae: SAE | None

    @property
    def name(self) -> str:
        """The place: "resid_pre0", "attn1", "mlp1", "resid_post2"."""
        return f"{self.kind}{self.layer}"

    @property
    def hook(self) -> str:
        """The hook the site splits (what `parse_component(self.name)` reads)."""
        return parse_component(self.name).hook_name

    @property
    def n_features(self) -> int:
        return 0 if self.sae is None else int(self.sae.cfg.d_sae)

    @property
    def n_columns(self) -> int:
        """Node columns: features, then the error term."""
        return self.n_features + 1

    def unit(self, column: int) -> int | str | None:
        """The node unit of a column: a feature index, "error", or None (the embedding site's one node)."""
        if self.sae is None:
            return None
        return column if column < self.n_features else "error"

    def column(self, unit: int | str | None) -> int:
        """The column of a node unit (inverse of `unit`); a ValueError for a unit this site does not have."""
        if unit == "error" or (unit is None and self.sae is None):
            return self.n_features
        if isinstance(unit, int) and not isinstance(unit, bool) and 0 <= unit < self.n_features:
            return unit
        raise ValueError(f"{unit!r} is not a node of site {self.name} (features 0-{self.n_features - 1} and 'error').")

    def columns(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features `[..., d_sae]`, error `[...]`): views of `values [..., n_columns]`, one entry per node column."""
        return values[..., :-1], values[..., -1]

    def to_sae(self, x: torch.Tensor) -> torch.Tensor:
        """`x` on the SAE's device and in its dtype (unchanged at the embedding site)."""
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
        if self.sae is None:
            return grad_x.new_zeros(*grad_x.shape[:-1], 0)
        return self.to_sae(grad_x) @ self.sae.W_dec.T


def embed_site() -> SAESite:
    """The embedding site `resid_pre0`: one node per position, no SAE."""
    return SAESite(EMBED_KIND, 0, None)


def sae_site(model, saes: SAESet, kind: str, layer: int) -> SAESite:
    """The site of `kind` at `layer` with the SAE that reads it in `saes`, or a ValueError saying why it cannot
    be one (no SAE there, a transcoder, or widths that do not fit)."""
    site = SAESite(kind, layer, None)
    sae = saes.get(site.hook)
    if sae is None:
        raise ValueError(f"No SAE reads {site.hook!r} ({site.name}).")
    if sae.is_transcoder:
        raise ValueError(f"The dictionary at {site.hook!r} is a transcoder; a feature circuit needs an SAE there.")
    d_model = model.cfg.d_model
    if sae.cfg.d_in != d_model or sae.cfg.d_out != d_model:
        raise ValueError(f"The SAE at {site.hook!r} has d_in={sae.cfg.d_in}, d_out={sae.cfg.d_out}; the model's d_model is {d_model}.")
    return SAESite(kind, layer, sae)


def resolve_sites(model, saes, kinds: Sequence[str] = SITE_KINDS, embed: bool = True) -> list[SAESite]:
    """The sites of every layer for `kinds`, in forward order (resid_pre0, then attn, mlp, resid_post of each layer).

    saes: an `SAESet` (or what `SAESet.of` takes). Raises a ValueError naming every hook that has no SAE in it.
    """
    kinds = sorted(site_kinds(kinds), key=_ORDER.get)
    saes = SAESet.of(saes if saes is not None else [])
    sites: list[SAESite] = [embed_site()] if embed else []
    missing: list[str] = []
    for layer in range(model.cfg.n_layers):
        for kind in kinds:
            hook = SAESite(kind, layer, None).hook
            if hook not in saes:
                missing.append(hook)
                continue
            sites.append(sae_site(model, saes, kind, layer))
    if missing:
        raise ValueError(
            f"A feature circuit over {list(kinds)} needs an SAE at every layer; missing: {missing}. "
            "Train them (iw.sae.train), load them, or pass kinds=... to leave a component kind out."
        )
    return sites
