"""The request/response protocol between a widget's front end and the kernel, and parameter checks.

Front end -> kernel: ``{"kind": "iw:request", "id": str, "method": str, "params": dict}``.
Kernel -> front end: ``{"kind": "iw:response", "id": str | None, "ok": True, "result": ...}`` (+ buffers) or
``{"kind": "iw:response", "id": str | None, "ok": False, "error": str}``; the id is None when the message was
unreadable. Every field is checked; a bad message gets an error reply that the widget shows.
"""

from __future__ import annotations

import reprlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REQUEST = "iw:request"
RESPONSE = "iw:response"
MAX_ID_LENGTH = 64
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 3, 60, 60, 40
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 6


def shown(value: Any) -> str:
    """`repr(value)` as an error message quotes it: at most ~100 characters however large or deep the value (a 10 MB
    string or a million-element list from a broken front end costs no 10 MB message)."""
    return _SHOWN.repr(value)


class RequestError(ValueError):
    """A request the widget cannot serve; its message is shown in the widget."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


@dataclass(frozen=True)
class Request:
    id: str
    method: str
    params: dict[str, Any]


def parse_request(message: Any, methods: Collection[str]) -> Request:
    """Checks the envelope of a front-end message; raises RequestError naming what is wrong."""
    if not isinstance(message, Mapping):
        raise RequestError(f"expected a request object, got {type(message).__name__}")
    request_id = message.get("id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_LENGTH:
        raise RequestError("request has no valid id (a string of 1 to 64 characters)")
    if message.get("kind") != REQUEST:
        raise RequestError(f"unknown message kind {shown(message.get('kind'))}", request_id)
    method = message.get("method")
    if not isinstance(method, str) or method not in methods:
        raise RequestError(f"unknown method {shown(method)}; this widget answers {sorted(methods)}", request_id)
    params = message.get("params", {})
    if not isinstance(params, Mapping):
        raise RequestError(f"params of {shown(method)} must be an object", request_id)
    return Request(request_id, method, dict(params))


def response(request_id: str | None, result: Any) -> dict[str, Any]:
    return {"kind": RESPONSE, "id": request_id, "ok": True, "result": result}


def error_response(request_id: str | None, message: str) -> dict[str, Any]:
    return {"kind": RESPONSE, "id": request_id, "ok": False, "error": message}


def check_keys(params: Mapping[str, Any], allowed: Collection[str]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise RequestError(f"unexpected parameters {shown(unknown)}; expected {sorted(allowed)}")


def get_int(params: Mapping[str, Any], name: str, low: int, high: int) -> int:
    """params[name] as an int in [low, high]."""
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer, got {shown(value)}")
    if not low <= value <= high:
        raise RequestError(f"{name} must be between {low} and {high}, got {value}")
    return value


def get_choice(params: Mapping[str, Any], name: str, choices: Sequence[str]) -> str:
    value = params.get(name)
    if value not in choices:
        raise RequestError(f"{name} must be one of {list(choices)}, got {shown(value)}")
    return value


def get_indices(params: Mapping[str, Any], name: str, shape: Sequence[int], max_count: int) -> list[tuple[int, ...]]:
    """params[name] as 1..max_count distinct index tuples into an array of `shape`."""
    value = params.get(name)
    if not isinstance(value, list) or not 0 < len(value) <= max_count:
        raise RequestError(f"{name} must be a list of 1 to {max_count} cells")
    cells: list[tuple[int, ...]] = []
    for cell in value:
        if not isinstance(cell, list) or len(cell) != len(shape):
            raise RequestError(f"each cell must be a list of {len(shape)} indices, got {shown(cell)}")
        for axis, (index, size) in enumerate(zip(cell, shape)):
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
                raise RequestError(f"cell {shown(cell)}: index {shown(index)} on axis {axis} is outside 0..{size - 1}")
        if tuple(cell) in cells:
            raise RequestError(f"cell {shown(cell)} appears twice")
        cells.append(tuple(cell))
    return cells
