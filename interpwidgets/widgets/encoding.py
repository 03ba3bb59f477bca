"""Arrays for the front end as binary buffers: float16, or uint8 codes with a scale (optionally deflated).

Wire format (decoded by js/lib/buffers.ts, the one other end of this layer): a dict
``{"dtype": "float16" | "uint8", "shape": [...], "scale": s, "offset": o, "compression": "deflate" | None,
"data": bytes}``; a stored value ``q`` (a float16, or a uint8 code) stands for ``offset + scale * q``.
Integer arrays (feature indices, edge endpoints) are ``{"dtype": "int32", "shape": [...], "data": bytes}``,
little-endian. Numbers never travel as JSON lists; `interpwidgets.widgets.testing` holds the decoders.

`pack_buffers` moves every bytes value of a reply into the message's buffer list, leaving
``{"$buffer": i}`` in its place.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

FLOAT16_MAX = float(np.finfo(np.float16).max)


def as_numpy(values: torch.Tensor | np.ndarray | Any) -> np.ndarray:
    """float32 numpy copy of a tensor, array or nested sequence."""
    if isinstance(values, torch.Tensor):
        return values.detach().to(torch.float32).cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def float16_array(values: torch.Tensor | np.ndarray | Any) -> dict[str, Any]:
    """Little-endian float16 (NaN stays NaN, drawn empty); values beyond float16's range get a power-of-2 scale."""
    array = as_numpy(values)
    finite = array[np.isfinite(array)]
    largest = float(np.abs(finite).max()) if finite.size else 0.0
    scale = 2.0 ** math.ceil(math.log2(largest / (FLOAT16_MAX / 2))) if largest > FLOAT16_MAX / 2 else 1.0
    return {
        "dtype": "float16",
        "shape": list(array.shape),
        "scale": scale,
        "offset": 0.0,
        "data": (array / scale).astype("<f2").tobytes(),
    }


def uint8_array(
    values: torch.Tensor | np.ndarray | Any, *, max_value: float | None = None, compress: bool = False
) -> dict[str, Any]:
    """uint8 codes over [min(0, min), max_value or max]: resolution (max - offset) / 255."""
    array = as_numpy(values)
    if not np.isfinite(array).all():
        raise ValueError("uint8 encoding needs finite values.")
    offset = min(0.0, float(array.min())) if array.size else 0.0
    top = float(array.max()) if max_value is None and array.size else float(max_value or 0.0)
    scale = (top - offset) / 255 if top > offset else 1.0
    codes = np.rint((array - offset) / scale).clip(0, 255).astype(np.uint8).tobytes()
    return {
        "dtype": "uint8",
        "shape": list(array.shape),
        "scale": scale,
        "offset": offset,
        "compression": "deflate" if compress else None,
        "data": zlib.compress(codes, 6) if compress else codes,
    }


def int32_array(values: torch.Tensor | np.ndarray | Sequence[int]) -> dict[str, Any]:
    """Little-endian int32 codes of integer `values` (any shape)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"int32_array needs integers, got {array.dtype}.")
    return {"dtype": "int32", "shape": list(array.shape), "data": array.astype("<i4").tobytes()}


def pack_buffers(payload: Any) -> tuple[Any, list[bytes]]:
    """(payload with bytes replaced by {"$buffer": i}, the buffers in order)."""
    buffers: list[bytes] = []

    def walk(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            buffers.append(bytes(value))
            return {"$buffer": len(buffers) - 1}
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(item) for item in value]
        return value

    return walk(payload), buffers
