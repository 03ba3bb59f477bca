"""`Explorer`: token features, the feature dashboard and attention patterns of one prompt, linked.

Clicking a token selects it everywhere (the attention view pins it); clicking a feature recolours the
tokens and opens it in the dashboard; choosing a dictionary switches both feature views. One prompt box (the token
view's) re-prompts the token view and the attention view together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ipywidgets
import torch
from torch import nn

from interpwidgets.sae.base import SAE
from interpwidgets.widgets.attention import AttentionPatterns
from interpwidgets.widgets.base import InterpWidget
from interpwidgets.widgets.feature_dashboard import FeatureDashboard
from interpwidgets.widgets.history import Names, Step, cell
from interpwidgets.widgets.linking import link_views
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.token_features import TokenFeatures


class Explorer(ipywidgets.VBox):
    """TokenFeatures and FeatureDashboard side by side, AttentionPatterns below, sharing one `Selection`.

    Explorer(model, iw.sae.pretrained(model), "When Mary and John went to the store, John gave a drink to")

    Without `hook` and `feature` it opens on the most active feature of the prompt in the deepest residual-stream
    dictionary (as TokenFeatures does); the token view marks dense features by the dashboard's corpus statistics.
    The parts are attributes (`token_features`, `dashboard`, `attention`, `selection`) for use from Python.
    The token view's prompt box (or `set_prompt(text)`) shows another prompt in the token and attention views.
    """

    def __init__(
        self,
        model: nn.Module,
        saes: SAE | Mapping[str, SAE] | Iterable[SAE],
        prompt: str | torch.Tensor | Sequence[int],
        *,
        hook: str | None = None,
        feature: int | None = None,
        corpus: torch.Tensor | Sequence[str] | None = None,
        attention: bool = True,
    ) -> None:
        self.selection = Selection()
        self.token_features = TokenFeatures(model, saes, prompt, hook=hook, feature=feature, selection=self.selection)
        self.dashboard = FeatureDashboard(model, saes, feature=self.token_features.feature, hook=self.token_features.hook,
                                          corpus=corpus, selection=self.selection)
        self.token_features._stats = self.dashboard._stats  # one set of corpus statistics: the dashboard's, as it computes them
        self.attention = AttentionPatterns(model, prompt, selection=self.selection, prompt_box=False) if attention else None
        self.token_features.observe(self._follow_prompt, "prompt_version")
        link_views(*self.views, selection=self.selection)
        names = Names()  # one set of default names, so that the parts' recorded code can share one cell
        for attribute in ("token_features", "dashboard", "attention"):
            view = getattr(self, attribute)
            if view is not None:
                view._history.names, view._code_parent = names, (self, attribute)
        self.token_features.layout.flex = "1 1 420px"
        self.dashboard.layout.flex = "1 1 560px"
        top = ipywidgets.HBox([self.token_features, self.dashboard], layout=ipywidgets.Layout(flex_flow="row wrap", gap="8px"))
        parts = [top] + ([self.attention] if self.attention is not None else [])
        super().__init__(parts, layout=ipywidgets.Layout(gap="8px"))

    def set_prompt(self, text: str) -> str:
        """Shows `text` in the token and attention views (what the prompt box does); returns the warning ("" if none)."""
        return self.token_features.set_prompt(text)

    def _follow_prompt(self, change: dict[str, Any]) -> None:
        """The token view took a new prompt (already checked): the attention view shows it too; a pinned token
        of the old prompt is let go."""
        self.selection.token = None
        if self.attention is not None:
            self.attention.set_prompt(self.token_features.prompt_text)

    @property
    def views(self) -> list[InterpWidget]:
        return [w for w in (self.token_features, self.dashboard, self.attention) if w is not None]

    @property
    def history(self) -> list[Step]:
        """The steps recorded by the parts, oldest first."""
        return sorted((step for view in self.views for step in view.history), key=lambda step: step.order)

    def code(self) -> str:
        """The parts' recorded actions as one runnable cell."""
        return cell(self.history)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live composite, with the parts' static previews as its `text/html`."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/html"] = "".join(view._repr_mimebundle_()[0]["text/html"] for view in self.views)
        return bundle
