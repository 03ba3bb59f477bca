"""Request parameter checks of the SAE widgets and the next-token predictions payload of the widgets that show them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interpwidgets.widgets.encoding import float16_array
from interpwidgets.widgets.messages import RequestError, get_int, shown


def predictions(top: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """`[(token, probability), ...]` as ``{"tokens": [...], "probs": float16 array}``."""
    return {"tokens": [str(token) for token, _ in top], "probs": float16_array(np.array([p for _, p in top], np.float32))}


def get_hook(params: Mapping[str, Any], hooks: Sequence[str]) -> str:
    hook = params.get("hook")
    if not isinstance(hook, str) or hook not in hooks:
        raise RequestError(f"hook must be one of {list(hooks)}, got {shown(hook)}")
    return hook


def get_feature(params: Mapping[str, Any], d_sae: int) -> int:
    return get_int(params, "feature", 0, d_sae - 1)
