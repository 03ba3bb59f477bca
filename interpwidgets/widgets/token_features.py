"""`TokenFeatures`: a prompt's tokens coloured by one SAE feature, with ablation and steering of that feature.

The kernel keeps the `iw.sae.feature_activations` result of the prompt (every dictionary, one forward pass).
The browser writes the `hook`, `feature`, `action` and `alpha` traits and asks, by verb, for the chosen
feature's activations over the tokens (float16), the strongest features of every token (for hover, int32
indices + float16 values), a clicked token's feature list, and the next-token predictions at a token before
and after ablating or steering the chosen feature (`iw.sae.ablate_features` / `iw.sae.steer_feature`).
The view has a prompt box (`prompting.py`): a new prompt is a new `feature_activations` result, same hook and feature.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from traitlets import Dict, Enum, Float, Int, List, TraitError, Unicode, validate

from interpwidgets.models.device import device_of
from interpwidgets.models.tokens import top_tokens
from interpwidgets.sae.base import SAE
from interpwidgets.sae.corpus_stats import FeatureStats
from interpwidgets.sae.editing import ablate_features, steer_feature
from interpwidgets.sae.features import FeatureActivations, feature_activations
from interpwidgets.sae.labels import feature_label
from interpwidgets.sae.sets import SAESet
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.density import (
    corpus_density,
    last_residual,
    most_active,
    prompt_density,
    stats_by_hook,
    text_start,
)
from interpwidgets.widgets.dictionary_choice import FeatureChoice
from interpwidgets.widgets.encoding import float16_array, int32_array
from interpwidgets.widgets.feature_params import predictions
from interpwidgets.widgets.history import Ref, Snippet, dictionary
from interpwidgets.widgets.messages import check_keys, get_int
from interpwidgets.widgets.prompting import PromptBox, check_prompt, unknown_warning
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import display_token, esc, frame, legend, sequential_rgb

ACTIONS = ("ablate", "steer")
PER_TOKEN = 5  # strongest features per token sent for hover
TOKEN_LIST = 12  # strongest features listed for a clicked token
MAX_ALPHA = 1e4


class TokenFeatures(PromptBox, FeatureChoice, InterpWidget):
    """The tokens of `prompt` coloured by a feature of one of `saes` (an SAE, list, dict or `SAESet`).

    TokenFeatures(model, iw.sae.pretrained(model), "When Mary and John went to the store, John gave a drink to")
    TokenFeatures(model, saes, iw.sae.feature_activations(model, saes, prompt))   # shows that result

    Without `hook` it opens on the deepest residual-stream dictionary (else the first), and with `feature=None`
    on that dictionary's most active feature on the prompt. `stats` (`iw.sae.feature_stats` results, one or
    several) give the corpus density that marks dense features; without them density is measured on the prompt.

    Hover a token: its activation and strongest features. Click a token: list its strongest features;
    click one to recolour. "ablate" removes the chosen feature's contribution at its hook, "steer" adds
    `alpha * W_dec[feature]` there; the widget shows the next-token predictions before and after.
    The prompt box (or `set_prompt(text)`) shows another prompt: the kernel computes its feature activations with
    the same SAEs and keeps the chosen dictionary and feature (also for a view built from a result).
    """

    _esm = STATIC / "token_features.js"
    _css = STATIC / "token_features.css"
    _front_end_writable = frozenset({"hook", "feature", "action", "alpha"})

    tokens = List(Unicode(), read_only=True).tag(sync=True)
    top_k = Int(10, read_only=True).tag(sync=True)
    action = Enum(ACTIONS, default_value="ablate").tag(sync=True)
    alpha = Float(4.0).tag(sync=True)
    limits = Dict(read_only=True).tag(sync=True)

    def __init__(
        self,
        model: nn.Module,
        saes: SAE | Mapping[str, SAE] | Iterable[SAE],
        prompt: str | torch.Tensor | Sequence[int] | FeatureActivations,
        *,
        hook: str | None = None,
        feature: int | None = None,
        action: str = "ablate",
        alpha: float = 4.0,
        top_k: int = 10,
        stats: FeatureStats | Iterable[FeatureStats] | None = None,
        selection: Selection | None = None,
    ) -> None:
        self.model = model
        self._given_saes = saes
        self.saes = SAESet.of(saes)
        if isinstance(prompt, FeatureActivations):
            self._result, warning = prompt, unknown_warning(model, prompt.tokens)
        else:
            checked = check_prompt(model, prompt)
            self._result, warning = feature_activations(model, self.saes, checked.tokens), checked.warning
        missing = sorted(set(self.saes) - set(self._result.by_hook))
        if missing:
            raise ValueError(f"The feature activations have no dictionary reading {missing}; compute them with these SAEs.")
        self._stats = stats_by_hook(self.saes, stats)
        super().__init__(selection=selection)
        self.set_trait("tokens", self._result.str_tokens)
        self.set_trait("limits", {"alpha": [-MAX_ALPHA, MAX_ALPHA]})
        self._publish_dictionaries()
        self.set_trait("top_k", _check_top_k(top_k, model.cfg.d_vocab))
        self.hook = hook if hook is not None else (last_residual(self.hooks) or self.hooks[0])
        self.feature = feature if feature is not None else most_active(self.activations(), self._start)
        self.action, self.alpha = action, alpha
        self._init_prompt(model, self._result.tokens if isinstance(prompt, FeatureActivations) else prompt, warning)

    def _swap_prompt(self, text: str, tokens: torch.Tensor) -> Snippet:
        """The feature activations of the new prompt (same SAEs), shown in place of the old; hook and feature stay."""
        self._result = feature_activations(self.model, self.saes, tokens)
        self.set_trait("tokens", self._result.str_tokens)
        name = self._history.names.default("result", self._result_ref(), "widget")[0]
        return self.snippet(name + " = iw.sae.feature_activations({model}, {saes}, {text})",
                            model=self._model_ref(), saes=self._saes_ref(), text=text)

    # ---- state
    @property
    def result(self) -> FeatureActivations:
        """The feature activations (and clean logits) this widget shows."""
        return self._result

    @property
    def sae(self) -> SAE:
        """The dictionary of the chosen hook."""
        return self.saes[self.hook]

    def activations(self, hook: str | None = None) -> torch.Tensor:
        """Feature activations `[n_tokens, d_sae]` of the dictionary at `hook` (default: the chosen one)."""
        return self._result[hook or self.hook]

    def density(self, feature: int, hook: str | None = None) -> dict[str, Any]:
        """How often `feature` fires: over the corpus statistics of its dictionary if given, else over the prompt."""
        hook = hook or self.hook
        if hook in self._stats:
            return corpus_density(self._stats[hook], feature)
        return prompt_density(self.activations(hook), feature, self._start)

    @property
    def _start(self) -> int:
        """The first position of the prompt's text (past a BOS token)."""
        return text_start(self.model, self._result.tokens)

    @validate("alpha")
    def _check_alpha(self, proposal: dict[str, Any]) -> float:
        if not abs(proposal["value"]) <= MAX_ALPHA:
            raise TraitError(f"alpha must be a finite number in [-{MAX_ALPHA:g}, {MAX_ALPHA:g}], got {proposal['value']}")
        return proposal["value"]

    def _labels(self, features: Iterable[int]) -> dict[str, str]:
        """{feature index: label} of those of `features` of the chosen dictionary that have a label."""
        labelled = ((int(i), feature_label(self.sae, int(i))) for i in features)
        return {str(i): label for i, label in labelled if label}

    def _position(self, params: dict[str, Any]) -> int:
        return get_int(params, "position", 0, len(self.tokens) - 1)

    # ---- requests from the front end: verbs; the dictionary, feature and intervention are the traits
    @handles("features")
    def _features(self, params: dict[str, Any]) -> dict[str, Any]:
        """{} -> the strongest features of every token for `hook`: indices int32 [n, k], values float16 [n, k], and
        the labels of those features {index: label} (those that have one)."""
        check_keys(params, ())
        acts = self.activations()
        values, indices = acts.topk(min(PER_TOKEN, acts.shape[1]), dim=-1)
        return {"hook": self.hook, "indices": int32_array(indices), "values": float16_array(values),
                "labels": self._labels(indices.unique().tolist())}

    @handles("activations")
    def _activations(self, params: dict[str, Any]) -> dict[str, Any]:
        """{} -> the activation of (`hook`, `feature`) on every token, float16 [n]."""
        check_keys(params, ())
        values = self.activations()[:, self.feature]
        step = self.record(f"show {self.feature_name(self.hook, self.feature)} on the tokens", "{acts}[:, {feature}]",
                           {"max": float(values.max())}, acts=self._acts_code(self.hook), feature=self.feature)
        return {"hook": self.hook, "feature": self.feature, "values": float16_array(values),
                "max": float(values.max().clamp_min(0)), "firing": self.density(self.feature), "code": step.snippet,
                "label": feature_label(self.sae, self.feature)}

    @handles("token")
    def _token(self, params: dict[str, Any]) -> dict[str, Any]:
        """{position} -> that token's strongest active features of `hook` (int32) with activations (float16)."""
        check_keys(params, {"position"})
        position = self._position(params)
        acts = self.activations()
        values, indices = acts[position].topk(min(TOKEN_LIST, acts.shape[1]))
        active = indices[values > 0]
        step = self.record(f"list the strongest features of {self.place(self.hook)} at token {position}",
                           "{acts}[{position}].topk({k})", {"values": values[values > 0].tolist()},
                           acts=self._acts_code(self.hook), position=position, k=int(values.numel()))
        return {
            "hook": self.hook,
            "position": position,
            "indices": int32_array(active),
            "values": float16_array(values[values > 0]),
            "prompt_max": float16_array(acts[:, active].max(dim=0).values),
            "firings": [self.density(int(index)) for index in active],
            "labels": [feature_label(self.sae, int(index)) or "" for index in active],
            "code": step.snippet,
        }

    @handles("intervene")
    def _intervene(self, params: dict[str, Any]) -> dict[str, Any]:
        """{position} -> next-token predictions at `position` before and after `action` on (`hook`, `feature`)."""
        check_keys(params, {"position"})
        position = self._position(params)
        hook, feature, action, alpha = self.hook, self.feature, self.action, self.alpha
        sae = self.saes[hook]
        edit = ablate_features(self.model, sae, [feature]) if action == "ablate" else steer_feature(self.model, sae, feature, alpha)
        with torch.no_grad():
            after = edit.run(self._result.tokens[None].to(device_of(self.model)))[0, position]
        name = self.feature_name(hook, feature)
        description = f"ablate {name}" if action == "ablate" else f"steer {name} by {alpha:g}"
        top = top_tokens(self.model, after, k=self.top_k)
        edit_code = (self.snippet("iw.sae.ablate_features({model}, {sae}, {features})", features=[feature], **self._model_sae(hook))
                     if action == "ablate" else
                     self.snippet("iw.sae.steer_feature({model}, {sae}, {feature}, {alpha})", feature=feature, alpha=alpha,
                                  **self._model_sae(hook)))
        step = self.record(
            f"{description}, next token after position {position}",
            "logits = {edit}.run({result}.tokens[None].to({model}.cfg.device))[0, {position}]\n"
            "logits.softmax(-1).topk({k})",
            {"after": [p for _, p in top]},
            edit=edit_code, result=self._result_ref(), model=self._model_ref(), position=position, k=self.top_k,
        )
        return {
            "hook": hook, "feature": feature, "action": action, "alpha": alpha, "position": position,
            "description": description, "code": step.snippet,
            "activation": float(self.activations(hook)[position, feature]),
            "before": predictions(top_tokens(self.model, self._result.logits[position], k=self.top_k)),
            "after": predictions(top),
        }

    # ---- copy as code: how the recorded calls name the widget's objects
    def _result_ref(self) -> Ref:
        return Ref(self._result, "result", "the FeatureActivations this widget shows")

    def _model_ref(self) -> Ref:
        return Ref(self.model, "model", "the model this widget runs")

    def _saes_ref(self) -> Ref:
        """The SAEs as the notebook gave them (a list, dict, SAESet or one SAE), else the widget's SAESet."""
        given = self._given_saes
        return Ref(given if isinstance(given, (SAE, Mapping, list, tuple)) else self.saes, "saes", "the SAEs this widget uses")

    def _model_sae(self, hook: str) -> dict[str, object]:
        return {"model": self._model_ref(), "sae": dictionary(self, hook)}

    def _acts_code(self, hook: str) -> Snippet:
        """The activations `[n_tokens, d_sae]` of the dictionary at `hook`, as code."""
        return self.snippet("{result}[{hook}]", result=self._result_ref(), hook=hook)

    # ---- static preview: the tokens coloured by the chosen feature
    def _static_html(self) -> str:
        values = self.activations()[:, self.feature].numpy()
        top = float(max(values.max(), 0.0))
        colours = sequential_rgb(values, top)
        spans = "".join(
            f'<span title="{esc(f"{i}: {v:.3g}")}" style="background:rgb{tuple(int(c) for c in rgb)};'
            f'color:{"#fff" if rgb.astype(float) @ np.array([0.2126, 0.7152, 0.0722]) < 140 else "#000"};'
            f'white-space:pre;border-radius:2px">{esc(display_token(t))}</span>'
            for i, (t, v, rgb) in enumerate(zip(self.tokens, values, colours))
        )
        name = self.feature_name(self.hook, self.feature)
        label = feature_label(self.sae, self.feature)
        name += f" {label}" if label else ""
        body = (
            f'<div style="font-family:monospace;line-height:1.8;max-width:720px">{spans}</div>'
            f"{legend('sequential', 0.0, top or 1.0, f'activation of {name}')}"
        )
        return frame(f"Token features \u00b7 {name}", body)


def _check_top_k(top_k: int, vocab: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= min(50, vocab):
        raise ValueError(f"top_k must be an integer in [1, {min(50, vocab)}], got {top_k!r}.")
    return top_k
