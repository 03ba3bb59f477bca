"""Steps shared by the loaders of other libraries' files (Gemma Scope, sparsify, circuit-tracer).

Each loader converts the file's tensors to our names and layout (`W_enc [d_in, d_sae]`, `W_dec
[d_sae, d_out]`, `b_enc [d_sae]`, `b_dec [d_out]`, `threshold [d_sae]`), says what it knows of the
config, and hands both to `build`, which applies the caller's overrides and checks every name and shape.
"""

from __future__ import annotations

from typing import Any

import torch

from interpwidgets.sae.base import SAE, SAEConfig
from interpwidgets.sae.formats import SAEFormatError, sae_from_state


def require(state: dict[str, torch.Tensor], names: tuple[str, ...], source: str, what: str) -> None:
    """Raise an SAEFormatError naming the tensors of `names` that `state` lacks."""
    missing = [name for name in names if name not in state]
    if missing:
        raise SAEFormatError(f"{source}: a {what} needs the tensors {missing}, which are missing (found {sorted(state)}).")


def latents_first(t: torch.Tensor, d_sae: int, name: str, source: str) -> torch.Tensor:
    """`t` as `[d_sae, width]`, transposing a `[width, d_sae]` matrix; the stored orientation wins when square."""
    if t.ndim == 2 and t.shape[0] == d_sae:
        return t
    if t.ndim == 2 and t.shape[1] == d_sae:
        return t.T
    raise SAEFormatError(f"{source}: {name} has shape {tuple(t.shape)}; expected a matrix with one side of {d_sae} (the latents).")


def drop_skip(state: dict[str, torch.Tensor], name: str, source: str) -> None:
    """Remove the skip-connection matrix `name` from `state`; refuse one that is not all zero.

    Our transcoders compute `f @ W_dec + b_dec` only: a linear skip term `x @ W_skip.T` has no place in them.
    """
    skip = state.pop(name, None)
    if skip is not None and bool(skip.any()):
        raise SAEFormatError(
            f"{source} is a transcoder with a skip connection ({name} {tuple(skip.shape)}, output = f @ W_dec + b_dec + "
            "x @ W_skip.T), which interpwidgets' transcoders cannot express; use a transcoder trained without one."
        )


def build(values: dict[str, Any], overrides: dict[str, Any], state: dict[str, torch.Tensor], source: str) -> SAE:
    """The checked dictionary for config `values` (with `overrides` applied) filled from `state` (float32, CPU)."""
    try:
        cfg = SAEConfig(**{**values, **overrides})
    except (TypeError, ValueError) as err:
        raise SAEFormatError(f"{source}: {err}") from err
    return sae_from_state(cfg, {k: v.contiguous() for k, v in state.items()}, source)
