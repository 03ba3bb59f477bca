"""Jupyter widgets (anywidget) for interpretability: attention patterns, patching heatmaps, and more.

    import interpwidgets as iw
    iw.widgets.AttentionPatterns(model, "When Mary and John went to the store, John gave a drink to")
    iw.widgets.PatchHeatmap(iw.patching.activation_patch(model, task, site="z"))
    iw.widgets.link(heatmap, patterns)        # share the selected token / layer / head

Each widget draws from a bundled ES module (no CDN), receives numbers as binary buffers, validates every
message from the browser, and carries a static HTML preview for viewers that cannot run widgets.
How to write a new widget: README.md in this folder.
"""

from interpwidgets.widgets.attention import AttentionPatterns
from interpwidgets.widgets.base import InterpWidget, handles
from interpwidgets.widgets.messages import RequestError
from interpwidgets.widgets.patch_heatmap import PatchHeatmap
from interpwidgets.widgets.selection import Selection, link

__all__ = ["AttentionPatterns", "InterpWidget", "PatchHeatmap", "RequestError", "Selection", "handles", "link"]
