"""Traits shared by the widgets that work on a set of SAEs (`self.saes`, a dict keyed by input hook).

`DictionaryList` syncs the dictionaries' hooks and widths to the front end; `FeatureChoice` adds the
chosen dictionary (`hook`) and feature (`feature`), validated against them. Mixed in before
`InterpWidget`: `class TokenFeatures(FeatureChoice, InterpWidget)`.
"""

from __future__ import annotations

from typing import Any

from traitlets import HasTraits, Int, List, TraitError, Unicode, observe, validate


class DictionaryList(HasTraits):
    hooks = List(Unicode(), read_only=True).tag(sync=True)
    sizes = List(Int(), read_only=True).tag(sync=True)

    def _publish_dictionaries(self) -> None:
        """Sends the hooks and widths of `self.saes` to the front end."""
        self.set_trait("hooks", list(self.saes))
        self.set_trait("sizes", [int(sae.cfg.d_sae) for sae in self.saes.values()])


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
        d_sae = int(self.saes[self.hook].cfg.d_sae)
        if not 0 <= proposal["value"] < d_sae:
            raise TraitError(f"feature must be between 0 and {d_sae - 1} for {self.hook}, got {proposal['value']}")
        return proposal["value"]
