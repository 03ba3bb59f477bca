"""Patching sites: which hook each site reads, which granularities it supports, and its cells.

A cell is one patch run's target: a `Component` (hook point + head/positions) at one index of the
result tensor. Residual-like sites are swept by "layer" (all positions) or "position"
(layer x position); per-head sites by "head" (all positions) or "head_position" (layer x head x
position; for `pattern` the position is the query/destination position).

Grouped-query models (Llama, Mistral, Gemma, Qwen) have fewer key/value heads than query heads:
hook_k and hook_v hold one entry per key/value head, shared by a group of query heads. Patching k or
v by head patches that shared key/value head (all the query heads of its group read it), on an axis
called "kv_head" (labels "KV0 (H0-H1)"); q, z and pattern stay per query head.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass

from interpwidgets.interventions import Component
from interpwidgets.interventions.components import heads_at

GRANULARITY_AXES = {
    "layer": ("layer",),
    "position": ("layer", "position"),
    "head": ("layer", "head"),
    "head_position": ("layer", "head", "position"),
}


@dataclass(frozen=True)
class Site:
    """name: the site's name; hook: the hook name with a `{layer}` slot; per_head: it has a head axis."""

    name: str
    hook: str
    per_head: bool

    @property
    def granularities(self) -> tuple[str, ...]:
        return ("head", "head_position") if self.per_head else ("position", "layer")

    def hook_name(self, layer: int) -> str:
        return self.hook.format(layer=layer)

    def cells(self, model, seq: int, by: str) -> tuple[tuple[str, ...], tuple[int, ...], list[Component]]:
        """(axis names, result shape, one Component per cell in row-major order) for granularity `by` on `model`;
        the head axis is "kv_head" (the key/value heads) for k and v on grouped-query models."""
        if by not in self.granularities:
            raise ValueError(
                f"by={by!r} does not apply to site {self.name!r}; use one of {self.granularities}"
                + (" (per-head sites are z, q, k, v, pattern)." if by in ("head", "head_position") else ".")
            )
        n_heads = heads_at(model, self.hook_name(0))
        head_axis = "kv_head" if n_heads != model.cfg.n_heads else "head"
        axes = tuple(head_axis if axis == "head" else axis for axis in GRANULARITY_AXES[by])
        sizes = {"layer": model.cfg.n_layers, head_axis: n_heads, "position": seq}
        shape = tuple(sizes[axis] for axis in axes)
        components = []
        for index in itertools.product(*(range(n) for n in shape)):
            cell = dict(zip(axes, index))
            positions = (cell["position"],) if "position" in cell else None
            components.append(Component(self.hook_name(cell["layer"]), head=cell.get(head_axis), positions=positions))
        return axes, shape, components


SITES: dict[str, Site] = {
    site.name: site
    for site in (
        Site("resid_pre", "blocks.{layer}.hook_resid_pre", False),
        Site("resid_mid", "blocks.{layer}.hook_resid_mid", False),
        Site("resid_post", "blocks.{layer}.hook_resid_post", False),
        Site("attn_out", "blocks.{layer}.hook_attn_out", False),
        Site("mlp_out", "blocks.{layer}.hook_mlp_out", False),
        Site("z", "blocks.{layer}.attn.hook_z", True),
        Site("q", "blocks.{layer}.attn.hook_q", True),
        Site("k", "blocks.{layer}.attn.hook_k", True),
        Site("v", "blocks.{layer}.attn.hook_v", True),
        Site("pattern", "blocks.{layer}.attn.hook_pattern", True),
    )
}
ALIASES = {"head_out": "z", "attn_head_out": "z", "result": "z", "hook_z": "z"}


def get_site(name: str, model=None) -> Site:
    """The Site called `name` (or an alias such as "head_out"), or a ValueError suggesting the closest."""
    site = SITES.get(ALIASES.get(name, name)) if isinstance(name, str) else None
    if site is None:
        close = difflib.get_close_matches(str(name), [*SITES, *ALIASES], n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"Unknown patching site {name!r}.{hint} Sites: {', '.join(SITES)}.")
    if model is not None and site.hook_name(0) not in model.hook_dict:
        raise ValueError(
            f"This model has no {site.hook_name(0)!r}, so site {site.name!r} cannot be patched"
            + (" (attention-only models have no MLP; use resid_post or attn_out)." if "mlp" in site.name or site.name == "resid_mid" else ".")
        )
    return site


def default_granularity(site: Site) -> str:
    return "head" if site.per_head else "position"
