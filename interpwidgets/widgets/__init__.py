"""Jupyter widgets (anywidget) for interpretability: attention patterns, patching heatmaps, SAE features, circuits.

    import interpwidgets as iw
    iw.widgets.AttentionPatterns(model, "When Mary and John went to the store, John gave a drink to")
    iw.widgets.PatchHeatmap(iw.patching.activation_patch(model, task, site="z"))
    iw.widgets.link(heatmap, patterns)        # share the selected token / layer / head / feature

Each widget draws from a bundled ES module (no CDN), receives numbers as binary buffers, validates every
message from the browser, and carries a static HTML preview for viewers that cannot run widgets.
A prompt is text or token ids; a model loaded without a tokenizer takes token ids only, shown as "#42".
How to write a new widget: README.md in this folder. Widget classes load on first use.
"""

from __future__ import annotations

import importlib

from interpwidgets.widgets.base import InterpWidget, handles
from interpwidgets.widgets.messages import RequestError
from interpwidgets.widgets.selection import Selection, link

_WIDGETS = {
    "AttentionPatterns": "attention",
    "PatchHeatmap": "patch_heatmap",
    "TokenFeatures": "token_features",
    "FeatureDashboard": "feature_dashboard",
    "Steering": "steering",
    "CircuitGraph": "circuit_graph",
    "Explorer": "explorer",
    "link_views": "linking",
}


def __getattr__(name: str):
    if name in _WIDGETS:
        return getattr(importlib.import_module(f"interpwidgets.widgets.{_WIDGETS[name]}"), name)
    raise AttributeError(f"module 'interpwidgets.widgets' has no attribute {name!r}")


__all__ = ["InterpWidget", "RequestError", "Selection", "handles", "link", *_WIDGETS]
