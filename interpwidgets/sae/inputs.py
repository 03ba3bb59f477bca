"""A dictionary's inputs: the hooks it reads and writes, checked against a model, and activations reshaped and moved
to where the dictionary computes."""

from __future__ import annotations

import torch

from interpwidgets.interventions.hooks import check_hook_name
from interpwidgets.tasks.metric import check_finite


def check_hook(model, hook_name: str) -> None:
    """Raise a ValueError naming close matches when `model` has no hook called `hook_name` (the engine's one
    hook-name check, `interventions.check_hook_name`), or saying so when the dictionary names no hook at all."""
    if not hook_name:
        raise ValueError("This dictionary does not say which hook it reads: load it with hook_name='blocks.L.hook_resid_post' (or the right hook).")
    check_hook_name(model, hook_name)


def as_dictionary_input(activation: torch.Tensor, width: int, hook_name: str) -> torch.Tensor:
    """`activation [..., width]` as is, or a per-head hook `[..., n_heads, d_head]` flattened to `[..., width]`."""
    if activation.shape[-1] == width:
        return activation
    if activation.ndim >= 2 and activation.shape[-2] * activation.shape[-1] == width:
        return activation.flatten(-2)
    raise ValueError(
        f"Hook {hook_name!r} gives activations of shape {tuple(activation.shape)}, but the dictionary expects width "
        f"{width}: this SAE was made for a different hook or model. Use an SAE whose d_in matches the hook."
    )


def to_dictionary(sae, x: torch.Tensor) -> torch.Tensor:
    """`x` on the dictionary's device and in its dtype, where its math runs (e.g. a float32 SAE on a
    bfloat16 model); callers cast what goes back into the model with `.to(activation)`."""
    return x.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype)


def check_fits(model, sae) -> None:
    """Raise unless `sae` reads and writes hooks that exist in `model` with matching widths."""
    for name in (sae.cfg.hook_name, sae.cfg.output_hook):
        check_hook(model, name)
    with torch.no_grad():
        names = {sae.cfg.hook_name, sae.cfg.output_hook}
        tokens = torch.zeros(1, 2, dtype=torch.long, device=model.cfg.device)
        _, cache = model.run_with_cache(tokens, names_filter=list(names))
    as_dictionary_input(cache[sae.cfg.hook_name], sae.cfg.d_in, sae.cfg.hook_name)
    as_dictionary_input(cache[sae.cfg.output_hook], sae.cfg.d_out, sae.cfg.output_hook)


def encode_checked(sae, x: torch.Tensor, hook_name: str, dims: tuple[str, ...] = ("token",)) -> torch.Tensor:
    """`sae.encode(x)` for `x [..., d_in]` read at `hook_name`, or a `NonFiniteError` saying whether the
    activation at the hook or the SAE's output held a NaN/inf first (and at which token and feature)."""
    check_finite(x, f"The activation at {hook_name} (the input of its SAE)", dims=dims)
    f = sae.encode(x)
    check_finite(f, f"The output of the SAE at {hook_name} (its weights may be corrupt)", dims=(*dims, "feature"))
    return f
