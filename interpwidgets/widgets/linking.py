"""Linking feature views: one shared selection, and the chosen dictionary (`hook`) kept in step.

The shared `Selection` links the browser views (token, layer, head, feature) without a kernel round trip;
`link_views` adds the kernel-side link for widgets that choose among several dictionaries
(`TokenFeatures`, `FeatureDashboard`): choosing a hook in one switches the others that hold it.
"""

from __future__ import annotations

from typing import Any

from interpwidgets.widgets.base import InterpWidget
from interpwidgets.widgets.selection import Selection, link


def link_views(*widgets: InterpWidget, selection: Selection | None = None) -> Selection:
    """Makes `widgets` share one selection (returned) and follow each other's `hook` where they hold it."""
    shared = link(*widgets, selection=selection)
    choosers = [w for w in widgets if w.has_trait("hook") and hasattr(w, "saes")]
    for source in choosers:
        others = [w for w in choosers if w is not source]

        def follow(change: dict[str, Any], others: list[InterpWidget] = others) -> None:
            for target in others:
                if change["new"] in target.saes:
                    target.hook = change["new"]

        source.observe(follow, names="hook")
    return shared
