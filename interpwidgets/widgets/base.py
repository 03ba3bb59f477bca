"""`InterpWidget`: the base of every interpwidgets widget (see README.md in this folder).

It adds to `anywidget.AnyWidget`:
- a `selection` trait shared with linked widgets (`selection.py`);
- request/response messaging: methods decorated with `@handles("name")` answer front-end requests;
  every message is checked (`messages.py`), and any failure becomes an error reply shown in the widget,
  never a traceback in the kernel (the last one is kept in `widget.last_error`);
- trait updates from the front end only for the traits in `_front_end_writable`; a rejected one is answered
  with an error and the front end is re-synced;
- a static `text/html` preview in the mime bundle (`_static_html`, see `static_html.py`);
- copy as code: `record(...)` keeps each action as the Python call that reproduces it in `widget.history`, and
  `widget.code()` returns them as one runnable cell (`history.py`).

Each piece of state has one source of truth: either a trait the browser writes (allow-listed, checked once by
its trait validator) and that a request, carrying only its verb, reads; or a request parameter that is no trait.
Limits, labels and orderings the browser needs go down as read-only traits. A widget holds no model code: it
shows an engine result, and any forward pass a request needs is an engine function's.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anywidget
from traitlets import TraitError

from interpwidgets.widgets.encoding import pack_buffers
from interpwidgets.widgets.history import History, Snippet, Step, cell, render
from interpwidgets.widgets.messages import RequestError, error_response, parse_request, response, shown
from interpwidgets.widgets.selection import Selection, SelectionTrait
from interpwidgets.widgets.static_html import esc, frame

STATIC = Path(__file__).resolve().parent.parent / "static"
MAX_ERROR_LENGTH = 600

Handler = Callable[[Any, dict[str, Any]], Any]
F = TypeVar("F", bound=Handler)


def handles(method: str) -> Callable[[F], F]:
    """Marks a widget method as the handler of front-end requests named `method`.

    The handler gets the request's params (a dict, not yet validated: check them with the helpers in
    `messages.py`) and returns a JSON-able result in which bytes values become binary buffers. Raise
    `RequestError` for a request it cannot serve.
    """

    def mark(function: F) -> F:
        function._iw_handles = method  # type: ignore[attr-defined]
        return function

    return mark


class InterpWidget(anywidget.AnyWidget):
    """Base class: set `_esm` / `_css` to the widget's bundle in `STATIC` and write the handlers."""

    selection = SelectionTrait().tag(sync=True)
    _handlers: ClassVar[dict[str, Handler]] = {}
    #: traits the front end may change; updates of any other trait are refused
    _front_end_writable: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = {
            function._iw_handles: function
            for klass in reversed(cls.__mro__)
            for function in vars(klass).values()
            if callable(function) and hasattr(function, "_iw_handles")
        }

    def __init__(self, *, selection: Selection | None = None, **kwargs: Any) -> None:
        super().__init__(selection=selection if selection is not None else Selection(), **kwargs)
        self.last_error: str | None = None
        self._history = History()
        #: (composite, attribute) when the widget is a part of a composite view (`Explorer`), for names in code
        self._code_parent: tuple[Any, str] | None = None
        self.on_msg(self._on_front_end_message)

    # ---- copy as code
    @property
    def history(self) -> list[Step]:
        """The recorded actions, oldest first (at most `history.HISTORY_LIMIT`)."""
        return self._history.steps

    def code(self) -> str:
        """The recorded actions as one runnable cell: the names it assumes, the import, then each call."""
        return cell(self.history)

    def snippet(self, template: str, /, **slots: Any) -> Snippet:
        """`template` with its `{slots}` written as literals or as the notebook's names (see `history.py`)."""
        return render(template, slots, names=self._history.names, owner=self, parent=self._code_parent)

    def record(self, action: str, code: str | Snippet, shown: dict[str, Any], /, **slots: Any) -> Step:
        """Records `action` (in words) as `code` (a template filled from `slots`, or a `Snippet`) and the numbers
        it showed; returns the step, whose `snippet` the reply carries as "code". Inside a request the step is
        kept only if the request succeeds."""
        if isinstance(code, Snippet):
            if slots:
                raise TypeError("a Snippet is already filled; pass slots with a template string instead")
            snippet = code
        else:
            snippet = self.snippet(code, **slots)
        step = Step(action, snippet.text, dict(shown), snippet.assumes, snippet.uses_iw)
        return self._history.add(step)

    # ---- messaging
    def _on_front_end_message(self, _widget: Any, content: Any, _buffers: list[bytes]) -> None:
        reply, buffers = self.handle_message(content)
        self.send(reply, buffers)

    def handle_message(self, content: Any) -> tuple[dict[str, Any], list[bytes]]:
        """The reply (and its buffers) to one front-end message; never raises."""
        request_id: str | None = None
        self._history.begin()
        try:
            request = parse_request(content, self._handlers)
            request_id = request.id
            result, buffers = pack_buffers(self._handlers[request.method](self, request.params))
            self._history.end(ok=True)
            return response(request_id, result), buffers
        except RequestError as error:
            self._history.end(ok=False)
            return error_response(error.request_id or request_id, _clip(str(error))), []
        except Exception as error:  # noqa: BLE001 - a widget answers with its error instead of raising in the kernel
            self._history.end(ok=False)
            self.last_error = traceback.format_exc()
            message = f"{type(error).__name__}: {error} (traceback in the widget's `last_error`)"
            return error_response(request_id, _clip(message)), []
        except BaseException:  # Ctrl-C (KeyboardInterrupt) stops the request: nothing is recorded, and it propagates
            self._history.end(ok=False)
            raise

    def send_error(self, message: str) -> None:
        """Shows `message` in every view of this widget."""
        self.send(error_response(None, _clip(message)))

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Trait updates from the front end; invalid ones are refused with a message and undone there."""
        refused = sorted(set(sync_data) - self._front_end_writable)
        try:
            if refused:
                raise TraitError(f"the front end may not change {shown(refused)}")
            super().set_state(sync_data)
        except TraitError as error:
            self.send_error(f"rejected update of {shown(sorted(sync_data))}: {error}")
            self.send_state([key for key in sync_data if key in self.keys])
        except Exception as error:  # noqa: BLE001 - e.g. an integer too large for a Float trait: refused, never raised
            self.last_error = traceback.format_exc()
            self.send_error(f"rejected update of {shown(sorted(sync_data))}: {type(error).__name__}: {error}")
            self.send_state([key for key in sync_data if key in self.keys])

    # ---- static preview
    def _static_html(self) -> str:
        """Self-contained HTML for viewers that cannot run the widget (override in each widget).

        It shows state already computed (the result, the last reply) and never runs the model: it is built
        whenever the widget is displayed.
        """
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        data, metadata = super()._repr_mimebundle_(**kwargs)
        try:
            data["text/html"] = self._static_html()
        except Exception as error:  # noqa: BLE001 - the live widget must show even if its preview fails
            data["text/html"] = frame(type(self).__name__, f"<p>{esc(f'no static preview: {error}')}</p>")
        return data, metadata


def _clip(message: str) -> str:
    return message if len(message) <= MAX_ERROR_LENGTH else message[: MAX_ERROR_LENGTH - 1] + "\u2026"
