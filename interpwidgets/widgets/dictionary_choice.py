"""Traits shared by the widgets that work on a set of SAEs (`self.saes`, an `SAESet`).

`DictionaryList` syncs the dictionaries' hooks, their places as printed ("resid_post1", the short names of
`iw.interventions.Component`), widths and layers to the front end; `FeatureChoice` adds the
chosen dictionary (`hook`) and feature (`feature`), validated against them. Mixed in before
`InterpWidget`: `class TokenFeatures(FeatureChoice, InterpWidget)`.
"""

from __future__ import annotations

from typing import Any

from traitlets import HasTraits, Int, List, TraitError, Unicode, observe, validate

from interpwidgets.interventions import Component
from interpwidgets.sae.features import check_feature
from interpwidgets.sae.sets import SAESet


class DictionaryList(HasTraits):
    saes: SAESet
    hooks = List(Unicode(), read_only=True).tag(sync=True)
    labels = List(Unicode(), read_only=True).tag(sync=True)
    sizes = List(Int(), read_only=True).tag(sync=True)
    layers = List(Int(allow_none=True), read_only=True).tag(sync=True)

    def _publish_dictionaries(self) -> None:
        """Sends the hooks, places, widths and block indices (None outside the blocks) of `self.saes`."""
        if not self.saes:
            raise ValueError("No SAEs given; pass at least one.")
        places = [Component(hook) for hook in self.saes]
        self.set_trait("hooks", list(self.saes))
        self.set_trait("labels", [place.label for place in places])
        self.set_trait("sizes", [int(sae.cfg.d_sae) for sae in self.saes.values()])
        self.set_trait("layers", [place.layer for place in places])

    def place(self, hook: str) -> str:
        """A dictionary as the widgets print it: the short name of the place it reads, "resid_post1"."""
        return Component(hook).label

    def feature_name(self, hook: str, feature: int) -> str:
        """A feature as the widgets print it: its dictionary's place and index, "resid_post1/3" (a circuit node's id)."""
        return f"{self.place(hook)}/{feature}"


class FeatureChoice(DictionaryList):
    hook = Unicode().tag(sync=True)
    feature = Int(0).tag(sync=True)

    @validate("hook")
    def _check_hook(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in self.saes:
            raise TraitError(f"hook must be one of {list(self.saes)}, got {proposal['value']!r}")
        return proposal["value"]

    @observe("hook")
    def _keep_feature_in_range(self, change: dict[str, Any]) -> None:
        if self.feature >= int(self.saes[change["new"]].cfg.d_sae):
            self.feature = 0

    @validate("feature")
    def _check_feature(self, proposal: dict[str, Any]) -> int:
        try:
            return check_feature(proposal["value"], int(self.saes[self.hook].cfg.d_sae))
        except ValueError as error:
            raise TraitError(f"{self.hook}: {error}") from None
