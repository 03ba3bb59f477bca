"""`FeatureDashboard`: one SAE feature at a glance, from `iw.sae.feature_stats` results over a token corpus.

Top-activating examples (context windows coloured by the activation), the histogram of its nonzero
activations, its density (fraction of tokens where it is active) and its direct logit effects
(`iw.sae.logit_effects`). Step to the previous or next feature or jump to one; the view follows the shared
selection's feature, and `show(feature, hook)` opens a feature from Python (other widgets, e.g.
`CircuitGraph`, call it on a click). A dictionary's statistics are computed when it is first chosen (or
given, `stats=`) and kept: every feature of it is then shown without running the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from traitlets import Bool, observe

from interpwidgets.models.tokens import require_tokenizer
from interpwidgets.sae.base import SAE
from interpwidgets.sae.corpus_stats import Example, FeatureStats, feature_stats
from interpwidgets.sae.features import LogitEffects, logit_effects, writes_residual
from interpwidgets.sae.labels import feature_label
from interpwidgets.sae.sets import SAESet
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.density import corpus_density, stats_by_hook
from interpwidgets.widgets.dictionary_choice import FeatureChoice
from interpwidgets.widgets.encoding import float16_array, int32_array
from interpwidgets.widgets.history import Ref, dictionary
from interpwidgets.widgets.messages import check_keys
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import display_token, esc, frame, legend, sequential_rgb

N_LOGITS = 8


class FeatureDashboard(FeatureChoice, InterpWidget):
    """A dashboard of one feature of `saes` (an SAE, list, dict or `SAESet`; choose one with `hook`).

    FeatureDashboard(model, saes["blocks.1.hook_resid_post"], feature=12)
    FeatureDashboard(model, saes, feature=12, hook="blocks.1.hook_resid_post", corpus=["some text", ...])
    FeatureDashboard(model, saes, stats=iw.sae.feature_stats(model, saes[hook], tokens))   # shows that result

    corpus: token rows [rows, seq], a list of texts, or None (`iw.sae.feature_stats`'s sample of the teaching
    corpus), for the dictionaries without `stats` (one `FeatureStats` or several, each keyed by its `hook`).
    """

    _esm = STATIC / "feature_dashboard.js"
    _css = STATIC / "feature_dashboard.css"
    _front_end_writable = frozenset({"hook", "feature", "follow_selection"})

    follow_selection = Bool(True).tag(sync=True)

    def __init__(
        self,
        model: nn.Module,
        saes: SAE | Mapping[str, SAE] | Iterable[SAE],
        *,
        feature: int = 0,
        hook: str | None = None,
        corpus: torch.Tensor | Sequence[str] | None = None,
        stats: FeatureStats | Iterable[FeatureStats] | None = None,
        follow_selection: bool = True,
        selection: Selection | None = None,
    ) -> None:
        self.model = model
        self._given_saes = saes
        self.saes = SAESet.of(saes)
        self._stats = stats_by_hook(self.saes, stats)
        if not isinstance(corpus, torch.Tensor) and set(self.saes) - set(self._stats):
            require_tokenizer(model, "the teaching corpus" if corpus is None else "a corpus of texts",
                              "pass corpus= as token rows (an integer tensor [rows, seq])")
        self._corpus = corpus
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

    def stats(self, hook: str | None = None) -> FeatureStats:
        """The corpus statistics of the dictionary at `hook` (default: the chosen one), computed on first use."""
        hook = hook or self.hook
        if hook not in self._stats:
            self._stats[hook] = feature_stats(self.model, self.saes[hook], self._corpus)
        return self._stats[hook]

    @observe("hook")
    def _compute_stats(self, change: dict[str, Any]) -> None:
        self.stats(change["new"])

    def _logit_effects(self, hook: str, feature: int) -> LogitEffects | None:
        """The feature's direct logit effects, or None for a dictionary that does not write the residual stream."""
        sae = self.saes[hook]
        return logit_effects(self.model, sae, feature, k=N_LOGITS) if writes_residual(self.model, sae) else None

    # ---- requests from the front end: a verb; what to send is the `hook` and `feature` traits
    @handles("feature")
    def _feature(self, params: dict[str, Any]) -> dict[str, Any]:
        """{} -> label, examples, histogram, density and logit effects of (`hook`, `feature`)."""
        check_keys(params, ())
        hook, feature = self.hook, self.feature
        stats, effects = self.stats(hook), self._logit_effects(hook, feature)
        examples = stats.examples(feature)
        code = "examples = {stats}.examples({feature})"
        shown: dict[str, Any] = {"activations": [e.activation for e in examples], "density": float(stats.density[feature])}
        slots: dict[str, Any] = {"stats": Ref(stats, f"stats({hook!r})", f"the FeatureStats of {hook} this widget shows"),
                                 "feature": feature}
        if effects is not None:
            code += "\neffects = iw.sae.logit_effects({model}, {sae}, {feature}, k={k})"
            slots.update(model=Ref(self.model, "model", "the model this widget runs"), sae=dictionary(self, hook), k=N_LOGITS)
            shown["logits"] = [v for _, v in effects.top]
        step = self.record(f"open {self.feature_name(hook, feature)} in the dashboard", code, shown, **slots)
        return {
            "code": step.snippet,
            "hook": hook,
            "feature": feature,
            "label": feature_label(self.saes[hook], feature),
            "density": float(stats.density[feature]),
            "firing": corpus_density(stats, feature),
            "n_tokens": stats.n_tokens,
            "max": float(stats.max[feature]),
            "examples": _examples_payload(examples),
            "histogram": float16_array(stats.histograms[feature].float()),
            "logits": None if effects is None else {"top": _pairs(effects.top), "bottom": _pairs(effects.bottom)},
        }

    # ---- static preview: the statistics already computed for the chosen dictionary
    def _static_html(self) -> str:
        stats, feature = self._stats[self.hook], self.feature
        top = float(stats.max[feature]) or 1.0
        rows = []
        for example in stats.examples(feature):
            colours = sequential_rgb(np.array(example.activations), top)
            spans = "".join(
                f'<span style="background:rgb{tuple(int(c) for c in rgb)};white-space:pre">{esc(display_token(t))}</span>'
                for t, rgb in zip(example.str_tokens, colours)
            )
            rows.append(f"<div>{esc(f'{example.activation:.3g}')} \u00b7 {spans}</div>")
        effects = self._logit_effects(self.hook, feature)
        logits = "" if effects is None else "".join(
            f"<div>{side} logits: {esc(', '.join(f'{display_token(t)} {v:+.2f}' for t, v in pairs))}</div>"
            for side, pairs in (("top", effects.top), ("bottom", effects.bottom))
        )
        dense = " \u00b7 <b>dense</b>" if corpus_density(stats, feature)["dense"] else ""
        body = (
            f"<div>density {float(stats.density[feature]):.3%} of {stats.n_tokens} tokens \u00b7 max {top:.3g}{dense}</div>"
            f'<div style="font-family:monospace;line-height:1.7;margin:6px 0">{"".join(rows) or "never active"}</div>'
            f"{logits}{legend('sequential', 0.0, top, 'feature activation')}"
        )
        label = feature_label(self.saes[self.hook], feature)
        return frame(f"Feature {feature} \u00b7 {self.place(self.hook)}" + (f" \u00b7 {label}" if label else ""), body)


def _examples_payload(examples: list[Example]) -> dict[str, Any]:
    """Windows padded to one width: tokens [[str]], values float16 [n, width] (NaN padding), peak offsets, rows."""
    width = max((len(e.str_tokens) for e in examples), default=0)
    values = np.full((len(examples), width), np.nan, np.float32)
    for i, example in enumerate(examples):
        values[i, : len(example.activations)] = example.activations
    return {
        "tokens": [e.str_tokens for e in examples],
        "values": float16_array(values),
        "peaks": int32_array([e.focus for e in examples]),
        "rows": int32_array([e.row for e in examples]),
    }


def _pairs(pairs: list[tuple[str, float]]) -> dict[str, Any]:
    return {"tokens": [t for t, _ in pairs], "values": float16_array(torch.tensor([v for _, v in pairs]))}
