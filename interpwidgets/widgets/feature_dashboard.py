"""`FeatureDashboard`: one SAE feature at a glance, computed over a token corpus in the kernel.

Top-activating examples (context windows coloured by the activation), the histogram of its nonzero
activations, its density (fraction of tokens where it is active) and its direct logit effects (the
decoder direction through the unembedding). Step to the previous or next feature or jump to one; the
view follows the shared selection's feature, and `show(feature, hook)` opens a feature from Python
(other widgets, e.g. `CircuitGraph`, call it on a click).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from traitlets import Bool

from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.dictionary_choice import FeatureChoice
from interpwidgets.widgets.encoding import float16_array, int32_array
from interpwidgets.widgets.feature_corpus import Example, FeatureCorpus, corpus_tokens
from interpwidgets.widgets.feature_data import dictionaries, logit_effects
from interpwidgets.widgets.feature_params import get_feature, get_hook
from interpwidgets.widgets.messages import check_keys
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import display_token, esc, frame, legend, sequential_rgb

N_EXAMPLES = 10
BEFORE, AFTER = 10, 4  # context window around an example's peak (tokens)
N_LOGITS = 8


class FeatureDashboard(FeatureChoice, InterpWidget):
    """A dashboard of feature `feature` of `sae` (an SAE, or several: a list, dict or `SAESet`, with `hook`).

    FeatureDashboard(model, saes["blocks.1.hook_resid_post"], feature=12)
    FeatureDashboard(model, saes, feature=12, hook="blocks.1.hook_resid_post", corpus=["some text", ...])

    corpus: token rows [rows, seq], a list of texts, or None (a sample of the teaching corpus).
    Statistics are computed once per dictionary, when it is first shown.
    """

    _esm = STATIC / "feature_dashboard.js"
    _css = STATIC / "feature_dashboard.css"
    _front_end_writable = frozenset({"hook", "feature", "follow_selection"})

    follow_selection = Bool(True).tag(sync=True)

    def __init__(
        self,
        model: Any,
        sae: Any,
        feature: int = 0,
        *,
        hook: str | None = None,
        corpus: Any = None,
        follow_selection: bool = True,
        selection: Selection | None = None,
    ) -> None:
        self.model = model
        self.saes = dictionaries(sae)
        self._corpus_tokens = corpus_tokens(model, corpus)
        self._stats: dict[str, FeatureCorpus] = {}
        super().__init__(selection=selection)
        self._publish_dictionaries()
        self.hook = hook if hook is not None else self.hooks[0]
        self.feature = feature
        self.follow_selection = follow_selection

    # ---- Python API
    def show(self, feature: int, hook: str | None = None) -> None:
        """Shows `feature` (of the dictionary at `hook`, default: the current one) in every view."""
        with self.hold_trait_notifications():
            if hook is not None:
                self.hook = hook
            self.feature = feature

    def stats(self, hook: str | None = None) -> FeatureCorpus:
        """The corpus statistics of the dictionary at `hook` (computed on first use)."""
        hook = hook or self.hook
        if hook not in self._stats:
            self._stats[hook] = FeatureCorpus(self.model, self.saes[hook], self._corpus_tokens)
        return self._stats[hook]

    # ---- requests from the front end
    @handles("feature")
    def _feature(self, params: dict[str, Any]) -> dict[str, Any]:
        """{hook, feature} -> examples, histogram, density and logit effects of one feature."""
        check_keys(params, {"hook", "feature"})
        hook = get_hook(params, list(self.saes))
        feature = get_feature(params, int(self.saes[hook].cfg.d_sae))
        return self.summary(hook, feature)

    def summary(self, hook: str, feature: int) -> dict[str, Any]:
        """Everything the dashboard draws for one feature (arrays as float16 wire arrays)."""
        stats = self.stats(hook)
        examples = stats.examples(feature, N_EXAMPLES, BEFORE, AFTER)
        effects = logit_effects(self.model, self.saes[hook], feature, N_LOGITS)
        return {
            "hook": hook,
            "feature": feature,
            "density": stats.density(feature),
            "n_tokens": stats.n_tokens,
            "max": float(stats.max[feature]),
            "examples": _examples_payload(examples),
            "histogram": float16_array(stats.histograms[feature].float()),
            "logits": None if effects is None else {side: _pairs(pairs) for side, pairs in effects.items()},
        }

    # ---- static preview
    def _static_html(self) -> str:
        stats = self.stats()
        feature = self.feature
        top = float(stats.max[feature]) or 1.0
        rows = []
        for example in stats.examples(feature, N_EXAMPLES, BEFORE, AFTER):
            colours = sequential_rgb(example.values.numpy(), top)
            spans = "".join(
                f'<span style="background:rgb{tuple(int(c) for c in rgb)};white-space:pre">{esc(display_token(t))}</span>'
                for t, rgb in zip(example.tokens, colours)
            )
            rows.append(f"<div>{esc(f'{float(example.values.max()):.3g}')} \u00b7 {spans}</div>")
        effects = logit_effects(self.model, self.saes[self.hook], feature, N_LOGITS) or {}
        logits = "".join(
            f"<div>{side} logits: {esc(', '.join(f'{display_token(t)} {v:+.2f}' for t, v in pairs))}</div>"
            for side, pairs in effects.items()
        )
        body = (
            f"<div>density {stats.density(feature):.3%} of {stats.n_tokens} tokens \u00b7 max {top:.3g}</div>"
            f'<div style="font-family:monospace;line-height:1.7;margin:6px 0">{"".join(rows) or "never active"}</div>'
            f"{logits}{legend('sequential', 0.0, top, 'feature activation')}"
        )
        return frame(f"Feature {feature} \u00b7 {self.hook}", body)


def _examples_payload(examples: list[Example]) -> dict[str, Any]:
    """Windows padded to one width: tokens [[str]], values float16 [n, width] (NaN padding), peak offsets."""
    width = max((len(e.tokens) for e in examples), default=0)
    values = np.full((len(examples), width), np.nan, np.float32)
    for i, example in enumerate(examples):
        values[i, : len(example.tokens)] = example.values.numpy()
    return {
        "tokens": [e.tokens for e in examples],
        "values": float16_array(values),
        "peaks": int32_array([e.peak for e in examples]),
        "rows": int32_array([e.row for e in examples]),
    }


def _pairs(pairs: list[tuple[str, float]]) -> dict[str, Any]:
    return {"tokens": [t for t, _ in pairs], "values": float16_array(torch.tensor([v for _, v in pairs]))}
