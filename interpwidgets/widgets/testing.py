"""Driving a widget from Python as its front end would, for tests and notebooks: send a request, decode the reply.

    ok, result = ask(widget, "feature", hook="blocks.2.hook_resid_post", feature=7)
    values = decode_array(result["values"]); indices = decode_int32(result["indices"])

The decoders are the inverses of `interpwidgets.widgets.encoding`'s encoders (the browser's are js/lib/buffers.ts).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def ask(widget: Any, method: str, **params: Any) -> tuple[bool, Any]:
    """(True, the reply's result with its buffers attached) or (False, the error message) of one request."""
    reply, buffers = widget.handle_message({"kind": "iw:request", "id": "t1", "method": method, "params": params})
    if reply.get("kind") != "iw:response" or reply.get("id") != "t1":
        raise AssertionError(f"not a reply to request t1: {reply!r}")
    return (True, attach_buffers(reply["result"], buffers)) if reply["ok"] else (False, reply["error"])


def attach_buffers(payload: Any, buffers: Sequence[bytes]) -> Any:
    """A reply's payload with every ``{"$buffer": i}`` replaced by `buffers[i]` (the inverse of `pack_buffers`)."""
    if isinstance(payload, dict):
        if set(payload) == {"$buffer"}:
            return buffers[payload["$buffer"]]
        return {key: attach_buffers(value, buffers) for key, value in payload.items()}
    if isinstance(payload, list):
        return [attach_buffers(item, buffers) for item in payload]
    return payload


def decode_array(wire: dict[str, Any]) -> np.ndarray:
    """The inverse of `float16_array` / `uint8_array` (float32)."""
    data = bytes(wire["data"])
    if wire.get("compression") == "deflate":
        data = zlib.decompress(data)
    if wire["dtype"] == "float16":
        stored = np.frombuffer(data, dtype="<f2").astype(np.float32)
    elif wire["dtype"] == "uint8":
        stored = np.frombuffer(data, dtype=np.uint8).astype(np.float32)
    else:
        raise ValueError(f"unknown dtype {wire['dtype']!r}")
    return (wire.get("offset", 0.0) + wire.get("scale", 1.0) * stored).reshape(wire["shape"])


def decode_int32(wire: Mapping[str, Any]) -> np.ndarray:
    """The inverse of `int32_array`."""
    if wire.get("dtype") != "int32":
        raise ValueError(f"expected an int32 wire array, got dtype {wire.get('dtype')!r}")
    return np.frombuffer(bytes(wire["data"]), dtype="<i4").reshape(wire["shape"])
