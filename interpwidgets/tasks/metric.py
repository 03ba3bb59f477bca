"""`Metric`: what every patching, attribution and circuit method scores, and the one check of what it returns."""

from __future__ import annotations

from collections.abc import Callable

import torch

Metric = Callable[[torch.Tensor], torch.Tensor]
"""The model's output (logits [batch, seq, vocab], or the activation at a readout hook) -> a scalar tensor."""


def check_metric(value, *, where: str = "metric", differentiable: bool = False) -> torch.Tensor:
    """`value` as a 0-d tensor, or a ValueError saying what is wrong with it.

    With `differentiable`, it must also be a float tensor that depends on the output through differentiable
    operations (gradient attribution needs that); a NaN or infinite value is refused either way.
    """
    if differentiable and not isinstance(value, torch.Tensor):
        raise ValueError(f"The {where} must return a torch scalar tensor computed from the model's output; got {type(value).__name__}.")
    tensor = torch.as_tensor(value)
    if tensor.numel() != 1:
        raise ValueError(
            f"The {where} must return one number for the whole batch (e.g. a mean over prompts); got shape "
            f"{tuple(tensor.shape)}. Reduce it with .mean()."
        )
    if differentiable:
        if not tensor.is_floating_point():
            raise ValueError(f"The {where} returned a {tensor.dtype} tensor; it must be a float computed differentiably from the output.")
        if torch.is_grad_enabled() and not tensor.requires_grad:
            raise ValueError(
                f"The {where} is not differentiable: its value does not depend on the model's output through "
                "differentiable operations (e.g. it uses argmax, comparisons, .item() or .detach()). "
                "Attribution needs a differentiable metric such as a logit difference."
            )
    if tensor.is_floating_point() and not torch.isfinite(tensor.detach()).all():
        raise ValueError(
            f"The {where} returned {float(tensor.detach()):g}; it must be a finite number. Check it on the clean and corrupt "
            "prompts (a log of zero, a division by a zero gap, or a model in a low precision that overflowed)."
        )
    return tensor.reshape(())


def rescale(values, low: float, high: float, *, undefined: str):
    """(values - low) / (high - low): 0 at `low`, 1 at `high` (a normalized metric, a faithfulness score).

    Raises a ValueError with the message `undefined` when the two reference values are (nearly) equal.
    """
    gap = high - low
    if abs(gap) < 1e-8:
        raise ValueError(undefined)
    return (values - low) / gap
