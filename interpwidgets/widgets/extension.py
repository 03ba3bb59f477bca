"""The IPython extension: `%load_ext interpwidgets` (or `iw.install()`).

It hands the view registry (`display.py`) to IPython's display formatter, so a result that is the value of a cell
shows as its view, and adds the `%iw` / `%%iw` magics (`magics.py`) with tab completion of their commands, task
names, options and hook names. `%unload_ext interpwidgets` takes all of it back.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from interpwidgets.widgets import display, magics

_loaded: dict[int, tuple[Any, list[str]]] = {}  # id(shell) -> (its listener, the type names it formats)


@magics_class
class InterpMagics(Magics):
    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.notebook = magics.Notebook(shell.user_ns)

    @line_cell_magic
    def iw(self, line: str, cell: str | None = None) -> Any:
        value = magics.run(self.notebook, line, cell)
        if isinstance(value, magics.Message):
            from IPython.display import display as show

            show(value)  # shown, not returned: a message is no result to keep in Out
            return None
        return value

    iw.__doc__ = magics.HELP


def _bundle(make: display.View):
    def format_as_view(obj: Any) -> Any:
        shown = make(obj)
        return shown._repr_mimebundle_() if hasattr(shown, "_repr_mimebundle_") else {"text/plain": repr(shown)}

    return format_as_view


def load_ipython_extension(shell: Any) -> None:
    """Registers the result views with `shell`'s display formatter and adds the %iw magics (idempotent)."""
    if id(shell) in _loaded:
        return
    formatter = shell.display_formatter.mimebundle_formatter
    names: list[str] = []

    def listen(name: str, make: display.View) -> None:
        module, _, type_name = name.rpartition(".")
        formatter.for_type_by_name(module, type_name, _bundle(make))
        names.append(name)

    for name, make in display.VIEWS.items():
        listen(name, make)
    display._listeners.append(listen)
    interp_magics = InterpMagics(shell)
    shell.register_magics(interp_magics)
    shell.set_hook("complete_command", lambda _shell, event: _complete(interp_magics, event), str_key="%iw")
    shell.set_hook("complete_command", lambda _shell, event: _complete(interp_magics, event), str_key="%%iw")
    _loaded[id(shell)] = (listen, names)


def unload_ipython_extension(shell: Any) -> None:
    """Takes the formatters and magics back."""
    listen, names = _loaded.pop(id(shell), (None, []))
    if listen is None:
        return
    display._listeners.remove(listen)
    formatter = shell.display_formatter.mimebundle_formatter
    for name in names:
        module, _, type_name = name.rpartition(".")
        formatter.deferred_printers.pop((module, type_name), None)
        for cls in [cls for cls in formatter.type_printers if display.type_name(cls) == name]:
            formatter.type_printers.pop(cls)
    shell.magics_manager.magics["line"].pop("iw", None)
    shell.magics_manager.magics["cell"].pop("iw", None)


def _complete(interp_magics: InterpMagics, event: Any) -> list[str]:
    line = event.line.split("iw", 1)[1] if "iw" in event.line else ""
    try:
        return magics.complete(interp_magics.notebook, line.lstrip())
    except Exception:  # noqa: BLE001 - completion must never raise into the editor
        return []


def install() -> None:
    """`%load_ext interpwidgets` as a call, for the running IPython kernel."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("iw.install() needs an IPython kernel (a Jupyter notebook or IPython); elsewhere, show a "
                           "result with iw.view(result).")
    load_ipython_extension(shell)
