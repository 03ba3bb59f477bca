"""Results that display themselves: a registry from result types to their views, and `iw.show`.

    iw.show(result)                 # displays the view registered for type(result) (a PatchResult -> PatchHeatmap)
    view = iw.view(result)          # the view itself, to keep, link or lay out
    iw.widgets.register_view("mypkg.results.MyResult", MyView)   # a type of yours (a class or "module.Class")

The engine never imports widgets: types are registered by their dotted name, so registering one imports nothing,
and the IPython extension (`%load_ext interpwidgets`, `extension.py`) hands the same table to IPython's display
formatter, so a result that is the value of a cell shows as its view. A type's view is found along its MRO (an
`SAE` subclass gets the SAE card).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

View = Callable[[Any], Any]
"""A factory: result -> something IPython displays (an `InterpWidget`, a card, a figure)."""


def _patch_heatmap(result: Any) -> Any:
    from interpwidgets.widgets.patch_heatmap import PatchHeatmap

    return PatchHeatmap(result)


def _attention(result: Any) -> Any:
    from interpwidgets.widgets.attention import AttentionPatterns

    return AttentionPatterns(result)


def _logit_lens(result: Any) -> Any:
    from interpwidgets.widgets.logit_lens import LogitLens

    return LogitLens(result)


def _dla(result: Any) -> Any:
    from interpwidgets.widgets.dla import DirectLogitAttribution

    return DirectLogitAttribution(result)


def _circuit(circuit: Any) -> Any:
    from interpwidgets.widgets.circuit_graph import CircuitGraph

    return CircuitGraph(circuit)


def _attribution_graph(graph: Any) -> Any:
    from interpwidgets.widgets.attribution_graph import AttributionGraphView

    return AttributionGraphView(graph)


def _card(name: str) -> View:
    def make(obj: Any) -> Any:
        from interpwidgets.widgets import cards

        return getattr(cards, name)(obj)

    make.__name__ = name
    return make


VIEWS: dict[str, View] = {
    "interpwidgets.patching.result.PatchResult": _patch_heatmap,
    "interpwidgets.lens.attention.AttentionResult": _attention,
    "interpwidgets.lens.logit_lens.LogitLensResult": _logit_lens,
    "interpwidgets.lens.dla.DLAResult": _dla,
    "interpwidgets.circuits.graph.Circuit": _circuit,
    "interpwidgets.circuits.attribution_graph.AttributionGraph": _attribution_graph,
    "interpwidgets.circuits.linear_graph.Attribution": _card("attribution_card"),
    "interpwidgets.circuits.faithfulness.FaithfulnessCurve": _card("faithfulness_figure"),
    "interpwidgets.circuits.graph_diff.GraphDiff": _card("graph_diff_figure"),
    "interpwidgets.sae.base.SAE": _card("sae_card"),
    "interpwidgets.sae.sets.SAESet": _card("sae_set_card"),
    "interpwidgets.sae.evaluation.SAEEvaluation": _card("evaluation_card"),
}
"""Dotted type name -> view factory. Add yours with `register_view`."""

_listeners: list[Callable[[str, View], None]] = []  # the IPython formatters installed by the extension


def type_name(cls: type) -> str:
    """"module.Class", as IPython's formatters key a type by name (`__name__`, so a nested class is found too)."""
    return f"{cls.__module__}.{cls.__name__}"


def register_view(result_type: type | str, view: View) -> None:
    """Shows `result_type` (a class, or its dotted name "module.Class") with `view(result)` from now on, also in
    a notebook where the extension is already loaded."""
    if not callable(view):
        raise TypeError(f"view must be callable (result -> a widget or an object IPython displays), got {view!r}.")
    name = result_type if isinstance(result_type, str) else type_name(result_type)
    if "." not in name:
        raise ValueError(f"give the type as a class or its dotted name 'module.Class', got {name!r}.")
    VIEWS[name] = view
    for listen in _listeners:
        listen(name, view)


def view_for(obj: Any) -> View | None:
    """The factory registered for `type(obj)` or the nearest class in its MRO; None when there is none."""
    for cls in type(obj).__mro__:
        found = VIEWS.get(type_name(cls))
        if found is not None:
            return found
    return None


def view(obj: Any) -> Any:
    """The view of `obj` (a new widget or card each call); TypeError naming what can be shown when no view is
    registered for its type."""
    make = view_for(obj)
    if make is None:
        known = ", ".join(sorted(name.rsplit(".", 1)[1] for name in VIEWS))
        raise TypeError(
            f"no view is registered for {type(obj).__name__}; iw.show knows {known}. "
            "Register one with iw.widgets.register_view(type, view)."
        )
    return make(obj)


def show(obj: Any) -> None:
    """Displays the view of `obj` in the notebook (see `view`)."""
    from IPython.display import display

    display(view(obj))
