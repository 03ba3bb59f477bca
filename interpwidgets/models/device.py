"""Where a model's weights live: the one `device_of` every engine function moves its inputs with."""

from __future__ import annotations

import torch


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (a TransformerBridge keeps all of them on one device)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        raise ValueError("The model has no parameters, so it has no device; is it a built model?") from None
