"""The request/response protocol: envelope and parameter checks, and the base widget's replies."""

from __future__ import annotations

from typing import Any

import pytest
from traitlets import Int

from interpwidgets.widgets import InterpWidget, RequestError, handles
from interpwidgets.widgets.messages import check_keys, get_choice, get_indices, get_int, parse_request


def request(method: str = "echo", params: Any = None, id: Any = "v-1", kind: str = "iw:request") -> dict:
    message = {"kind": kind, "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def test_parse_request_accepts_a_well_formed_request():
    parsed = parse_request(request(params={"x": 1}), {"echo"})
    assert (parsed.id, parsed.method, parsed.params) == ("v-1", "echo", {"x": 1})
    assert parse_request(request(), {"echo"}).params == {}


@pytest.mark.parametrize(
    ("message", "match", "has_id"),
    [
        ("not a dict", "expected a request object", False),
        ([1, 2], "expected a request object", False),
        (request(id=None), "no valid id", False),
        (request(id=7), "no valid id", False),
        (request(id="x" * 65), "no valid id", False),
        (request(kind="anywidget-command"), "unknown message kind", True),
        (request(method="nope"), "unknown method 'nope'", True),
        (request(method=None), "unknown method None", True),
        (request(params=[1]), "params of 'echo' must be an object", True),
    ],
)
def test_parse_request_names_what_is_wrong(message, match, has_id):
    with pytest.raises(RequestError, match=match) as raised:
        parse_request(message, {"echo"})
    assert (raised.value.request_id == "v-1") is has_id


@pytest.mark.parametrize("value", [True, 1.0, "1", None, -1, 5])
def test_get_int_rejects_non_integers_and_out_of_range(value):
    with pytest.raises(RequestError, match="layer"):
        get_int({"layer": value}, "layer", 0, 4)


def test_get_int_and_get_choice_accept_valid_values():
    assert get_int({"layer": 4}, "layer", 0, 4) == 4
    assert get_choice({"w": "value"}, "w", ["attention", "value"]) == "value"
    with pytest.raises(RequestError, match="must be one of"):
        get_choice({"w": "values"}, "w", ["attention", "value"])


def test_check_keys_rejects_unexpected_parameters():
    check_keys({"a": 1}, {"a", "b"})
    with pytest.raises(RequestError, match=r"unexpected parameters \['c'\]"):
        check_keys({"a": 1, "c": 2}, {"a", "b"})


@pytest.mark.parametrize(
    ("cells", "match"),
    [
        ([], "list of 1 to 3 cells"),
        ("0,1", "list of 1 to 3 cells"),
        ([[0, 0]] * 4, "list of 1 to 3 cells"),
        ([[0]], "list of 2 indices"),
        ([(0, 1)], "list of 2 indices"),
        ([[0, 4]], "index 4 on axis 1 is outside 0..3"),
        ([[0, -1]], "outside"),
        ([[0, True]], "outside"),
        ([[0, 1.0]], "outside"),
        ([[1, 1], [1, 1]], "appears twice"),
    ],
)
def test_get_indices_rejects_malformed_cells(cells, match):
    with pytest.raises(RequestError, match=match):
        get_indices({"cells": cells}, "cells", (2, 4), 3)


def test_get_indices_returns_tuples():
    assert get_indices({"cells": [[1, 3], [0, 0]]}, "cells", (2, 4), 3) == [(1, 3), (0, 0)]


class Probe(InterpWidget):
    """A minimal widget on the base, for testing the base's message handling."""

    _esm = "export default { render() {} }"
    _front_end_writable = frozenset({"count"})
    count = Int(0, min=0, max=3).tag(sync=True)

    @handles("echo")
    def _echo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"value": get_int(params, "value", 0, 9), "raw": b"\x01\x02"}

    @handles("explode")
    def _explode(self, params: dict[str, Any]) -> None:
        raise ZeroDivisionError("boom")


def test_handlers_are_collected_by_name():
    assert set(Probe._handlers) == {"echo", "explode"}


def test_reply_carries_result_and_buffers():
    reply, buffers = Probe().handle_message(request(params={"value": 3}))
    assert reply == {"kind": "iw:response", "id": "v-1", "ok": True, "result": {"value": 3, "raw": {"$buffer": 0}}}
    assert buffers == [b"\x01\x02"]


def test_invalid_params_get_an_error_reply_with_the_request_id():
    reply, buffers = Probe().handle_message(request(params={"value": 10}))
    assert reply == {"kind": "iw:response", "id": "v-1", "ok": False, "error": "value must be between 0 and 9, got 10"}
    assert buffers == []


def test_unreadable_message_gets_an_error_reply_without_id():
    reply, _ = Probe().handle_message(["garbage"])
    assert reply["ok"] is False and reply["id"] is None


def test_handler_exceptions_become_error_replies_and_keep_the_traceback():
    widget = Probe()
    reply, _ = widget.handle_message(request("explode"))
    assert reply["ok"] is False and reply["id"] == "v-1"
    assert reply["error"].startswith("ZeroDivisionError: boom")
    assert "ZeroDivisionError" in widget.last_error
    assert widget.handle_message(request(params={"value": 1}))[0]["ok"] is True  # and it carries on


def test_messages_from_the_front_end_are_answered_over_the_comm(monkeypatch):
    widget = Probe()
    sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append((content, buffers)))
    widget._on_front_end_message(widget, request(params={"value": 2}), [])
    widget._on_front_end_message(widget, {"kind": "iw:request"}, [])
    assert sent[0][0]["ok"] is True and sent[0][1] == [b"\x01\x02"]
    assert sent[1][0]["ok"] is False and sent[1][0]["id"] is None


def test_front_end_trait_updates_are_validated(monkeypatch):
    widget = Probe()
    errors, resynced = [], []
    monkeypatch.setattr(widget, "send_error", errors.append)
    monkeypatch.setattr(widget, "send_state", resynced.append)
    widget.set_state({"count": 2})
    assert widget.count == 2 and errors == []
    widget.set_state({"count": 7})
    assert widget.count == 2 and "count" in errors[-1] and resynced[-1] == ["count"]
    widget.set_state({"selection": "anywidget:elsewhere"})
    assert "may not change ['selection']" in errors[-1]


def test_mime_bundle_has_a_fallback_even_when_the_preview_fails():
    data, _ = Probe()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "no static preview" in data["text/html"]
