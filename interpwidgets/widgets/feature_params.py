"""Request parameter checks and prediction payloads shared by the SAE feature widgets."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interpwidgets.widgets.encoding import float16_array
from interpwidgets.widgets.messages import RequestError, get_int


def predictions(top: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """`[(token, probability), ...]` as ``{"tokens": [...], "probs": float16 array}``."""
    return {"tokens": [str(token) for token, _ in top], "probs": float16_array(np.array([p for _, p in top], np.float32))}


def get_hook(params: Mapping[str, Any], hooks: Sequence[str]) -> str:
    hook = params.get("hook")
    if not isinstance(hook, str) or hook not in hooks:
        raise RequestError(f"hook must be one of {list(hooks)}, got {hook!r}")
    return hook


def get_feature(params: Mapping[str, Any], d_sae: int) -> int:
    return get_int(params, "feature", 0, d_sae - 1)


def get_float(params: Mapping[str, Any], name: str, low: float, high: float) -> float:
    """params[name] as a finite number in [low, high]."""
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise RequestError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return float(value)
