"""`Selection`: the focus shared by linked widgets (token, layer, head, feature).

A `Selection` is a widget model without a view. Every interpwidgets widget has a `selection` trait;
widgets holding the same `Selection` follow each other in the browser (no kernel round trip), and the
Python object always holds the latest values::

    sel = iw.widgets.Selection()
    heatmap = iw.widgets.PatchHeatmap(result, selection=sel)
    patterns = iw.widgets.AttentionPatterns(model, prompt, selection=sel)
    # or: iw.widgets.link(heatmap, patterns)
    sel.head  # the head last clicked in either widget
"""

from __future__ import annotations

import ipywidgets
from anywidget import WidgetTrait
from traitlets import Int


class Selection(ipywidgets.Widget):
    """Token position, layer, head and SAE feature in focus; None where nothing is selected."""

    token = Int(None, allow_none=True, min=0).tag(sync=True)
    layer = Int(None, allow_none=True, min=0).tag(sync=True)
    head = Int(None, allow_none=True, min=0).tag(sync=True)
    feature = Int(None, allow_none=True, min=0).tag(sync=True)

    def __repr__(self) -> str:
        return f"Selection(token={self.token}, layer={self.layer}, head={self.head}, feature={self.feature})"


class SelectionTrait(WidgetTrait):
    """A widget's reference to a `Selection` (sent to the front end as a widget reference)."""

    info_text = "an interpwidgets Selection"

    def validate(self, obj, value):
        if isinstance(value, Selection):
            return value
        self.error(obj, value)
        return None


def link(*widgets, selection: Selection | None = None) -> Selection:
    """Makes `widgets` share one selection (`selection`, or the first widget's) and returns it."""
    if not widgets:
        raise ValueError("link needs at least one widget.")
    shared = selection if selection is not None else widgets[0].selection
    for widget in widgets:
        widget.selection = shared
    return shared
