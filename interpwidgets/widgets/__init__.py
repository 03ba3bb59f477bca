"""Jupyter widgets (anywidget) for interpretability: attention patterns, patching heatmaps, SAE features, circuits.

    import interpwidgets as iw
    iw.widgets.AttentionPatterns(model, "When Mary and John went to the store, John gave a drink to")
    iw.widgets.PatchHeatmap(iw.patching.activation_patch(model, task, site="z"))
    iw.widgets.link(heatmap, patterns)        # share the selected token / layer / head / feature
    iw.show(result)                           # any result as its registered view (display.py); %load_ext interpwidgets
                                              # makes results that are a cell's value show so, and adds %iw (magics.py)

Each widget draws from a bundled ES module (no CDN), receives numbers as binary buffers, validates every
message from the browser, and carries a static HTML preview for viewers that cannot run widgets.
A prompt is text or token ids; a model loaded without a tokenizer takes token ids only, shown as "#42".
How to write a new widget: README.md in this folder.
"""

from __future__ import annotations

from interpwidgets.widgets.attention import AttentionPatterns
from interpwidgets.widgets.attribution_graph import AttributionGraphView
from interpwidgets.widgets.base import InterpWidget, handles
from interpwidgets.widgets.circuit_graph import CircuitGraph
from interpwidgets.widgets.dla import DirectLogitAttribution
from interpwidgets.widgets.display import register_view, show, view
from interpwidgets.widgets.explorer import Explorer
from interpwidgets.widgets.feature_dashboard import FeatureDashboard
from interpwidgets.widgets.linking import link_views
from interpwidgets.widgets.logit_lens import LogitLens
from interpwidgets.widgets.messages import RequestError
from interpwidgets.widgets.patch_heatmap import PatchHeatmap
from interpwidgets.widgets.selection import Selection, link
from interpwidgets.widgets.steering import Steering
from interpwidgets.widgets.token_features import TokenFeatures
from interpwidgets.widgets.training_monitor import TrainingMonitor

__all__ = [
    "AttentionPatterns", "AttributionGraphView", "CircuitGraph", "DirectLogitAttribution", "Explorer", "FeatureDashboard",
    "InterpWidget", "LogitLens", "PatchHeatmap", "RequestError",
    "Selection", "Steering", "TokenFeatures", "TrainingMonitor", "handles", "link", "link_views", "register_view", "show", "view",
]
