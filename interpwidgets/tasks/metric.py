"""`Metric`: what every patching, attribution and circuit method scores, the one check of what it returns,
and the one check that a number is finite (`check_finite`, raising `NonFiniteError` that says where)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
        raise NonFiniteError(
            f"The {where} returned {float(tensor.detach()):g}; it must be a finite number. Check it on the clean and corrupt "
            "prompts (a log of zero, a division by a zero gap, or a model in a low precision that overflowed)."
        )
    return tensor.reshape(())


class NonFiniteError(ValueError):
    """A NaN or inf where a finite number is needed (a metric, an activation, a gradient); the message says where."""


NONFINITE_HINT = (
    "Look for a hook that writes NaN/inf, a metric whose gradient is undefined (sqrt or log of zero or a negative, "
    "even in a torch.where branch not taken), or a model in a low precision that overflowed."
)


def check_finite(tensor: torch.Tensor, where: str, *, dims: Sequence[str] = (), hint: str = NONFINITE_HINT) -> torch.Tensor:
    """`tensor` unchanged if every value is finite, else a `NonFiniteError` naming `where` and the first bad index.

    dims: names of the leading axes for the message (e.g. ("prompt", "position")); unnamed axes print as numbers.
    """
    bad = ~torch.isfinite(tensor.detach())
    if not bad.any():
        return tensor
    first = [int(i) for i in bad.nonzero()[0]]
    at = ", ".join(f"{dims[d]} {i}" if d < len(dims) else str(i) for d, i in enumerate(first))
    value = float(tensor.detach()[tuple(first)])
    raise NonFiniteError(
        f"{where} holds {value:g} at [{at}] ({int(bad.sum())} of {bad.numel()} values are NaN or inf); "
        f"stopped there instead of returning meaningless numbers. {hint}"
    )


def rescale(values, low: float, high: float, *, undefined: str):
    """(values - low) / (high - low): 0 at `low`, 1 at `high` (a normalized metric, a faithfulness score).

    Raises a ValueError with the message `undefined` when the two reference values are (nearly) equal.
    """
    gap = high - low
    if abs(gap) < 1e-8:
        raise ValueError(undefined)
    return (values - low) / gap
