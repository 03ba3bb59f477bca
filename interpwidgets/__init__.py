"""interpwidgets: Jupyter widgets and an engine for mechanistic interpretability of language models.

    import interpwidgets as iw
    model = iw.load_model()                       # bundled teaching model (TransformerBridge)
    task = iw.tasks.ioi(model, n=64)              # clean/corrupt prompts + metric
    with iw.config.scoped(progress=False): ...    # defaults: progress bars, device, batch memory budget
    iw.show(result)                               # any result as its view (a PatchResult -> PatchHeatmap)

In a notebook, `%load_ext interpwidgets` makes every result display as its view and adds the `%iw` magics.

The subpackages load on first use (`iw.patching`, `iw.widgets`, ...): `import interpwidgets` costs no more than
importing torch, which `load_model` needs anyway; each subpackage imports its public names explicitly.
"""

from __future__ import annotations

import importlib

from interpwidgets import config
from interpwidgets.models import load_model

__version__ = "0.1.0"

SUBPACKAGES = ("data", "models", "tasks", "interventions", "patching", "lens", "sae", "circuits", "widgets", "teach")


def show(obj) -> None:
    """Displays the view of a result: `iw.widgets.display.show`."""
    from interpwidgets.widgets.display import show as show_view

    show_view(obj)


def view(obj):
    """The view of a result (a widget or a card), to keep, link or lay out: `iw.widgets.display.view`."""
    from interpwidgets.widgets.display import view as view_of

    return view_of(obj)


def install() -> None:
    """`%load_ext interpwidgets` as a call: results display as their views, and the %iw magics."""
    from interpwidgets.widgets.extension import install as install_extension

    install_extension()


def load_ipython_extension(shell) -> None:
    """IPython's entry point for `%load_ext interpwidgets`."""
    from interpwidgets.widgets.extension import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell) -> None:
    from interpwidgets.widgets.extension import unload_ipython_extension as unload

    unload(shell)


def __getattr__(name: str):
    if name in SUBPACKAGES:
        return importlib.import_module(f"interpwidgets.{name}")
    raise AttributeError(f"module 'interpwidgets' has no attribute {name!r}")


__all__ = ["config", "install", "load_model", "show", "view", *SUBPACKAGES]
