"""Wire helpers shared by the SAE feature widgets: integer arrays, predictions, and request parameter checks.

Integer arrays (feature indices, edge endpoints) travel as little-endian int32 buffers,
``{"dtype": "int32", "shape": [...], "data": bytes}``, decoded by js/widgets/features/wire.ts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from interpwidgets.widgets.encoding import float16_array
from interpwidgets.widgets.messages import RequestError, get_int


def int32_array(values: torch.Tensor | np.ndarray | Sequence[int]) -> dict[str, Any]:
    """Little-endian int32 codes of integer `values` (any shape)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"int32_array needs integers, got {array.dtype}.")
    return {"dtype": "int32", "shape": list(array.shape), "data": array.astype("<i4").tobytes()}


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


def get_optional_int(params: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    return None if params.get(name) is None else get_int(params, name, low, high)


def decode_int32(wire: Mapping[str, Any]) -> np.ndarray:
    """The inverse of `int32_array`."""
    if wire.get("dtype") != "int32":
        raise ValueError(f"expected an int32 wire array, got dtype {wire.get('dtype')!r}")
    return np.frombuffer(bytes(wire["data"]), dtype="<i4").reshape(wire["shape"])


def attach_buffers(payload: Any, buffers: Sequence[bytes]) -> Any:
    """A reply's payload with every ``{"$buffer": i}`` replaced by `buffers[i]` (the inverse of `pack_buffers`).

    For driving a widget from Python as its front end would: ``reply, buffers = widget.handle_message(request)``.
    """
    if isinstance(payload, dict):
        if set(payload) == {"$buffer"}:
            return buffers[payload["$buffer"]]
        return {key: attach_buffers(value, buffers) for key, value in payload.items()}
    if isinstance(payload, list):
        return [attach_buffers(item, buffers) for item in payload]
    return payload
