"""Accept sae_lens SAE objects without depending on sae_lens (it pins transformer-lens < 4).

Duck typing: an object with `W_enc`, `W_dec`, `b_dec`, `state_dict()` and a `cfg` that has
`to_dict()` (sae_lens 5 and 6) is converted through the same path as an SAELens folder on disk.
"""

from __future__ import annotations

from interpwidgets.sae.base import SAE
from interpwidgets.sae.formats import _fold_saelens_extras, config_from_saelens, from_saelens_names, sae_from_state


def looks_like_saelens_sae(obj) -> bool:
    """True for objects shaped like a sae_lens SAE."""
    cfg = getattr(obj, "cfg", None)
    return (all(hasattr(obj, name) for name in ("W_enc", "W_dec", "b_dec", "state_dict"))
            and callable(getattr(cfg, "to_dict", None)))


def from_saelens_object(obj, **overrides) -> SAE:
    """Our equivalent of a sae_lens SAE object (weights copied to float32 on CPU)."""
    raw = dict(obj.cfg.to_dict())
    if callable(getattr(obj.cfg, "architecture", None)):
        raw["architecture"] = obj.cfg.architecture()
    raw["metadata"] = dict(raw.get("metadata") or {})
    cfg = config_from_saelens(raw, **overrides)
    state = {k: v.detach().float().cpu() for k, v in obj.state_dict().items()}
    from_saelens_names(cfg.architecture, state)
    _fold_saelens_extras(raw, state)
    return sae_from_state(cfg, state, f"sae_lens {type(obj).__name__}")
