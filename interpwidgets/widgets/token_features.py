"""`TokenFeatures`: a prompt's tokens coloured by one SAE feature, with ablation and steering of that feature.

The kernel holds every dictionary's feature activations on the prompt (one forward pass). The browser
asks for one feature's activations over the tokens (float16), the strongest features of every token (for
hover, int32 indices + float16 values), a clicked token's feature list, and the next-token predictions
before and after ablating or steering the chosen feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from traitlets import Enum, Float, Int, List, TraitError, Unicode, validate

from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.dictionary_choice import FeatureChoice
from interpwidgets.widgets.encoding import float16_array, int32_array
from interpwidgets.sae.editing import ablate_features, steer_feature
from interpwidgets.widgets.feature_data import dictionaries, feature_activations, top_predictions
from interpwidgets.widgets.feature_params import get_feature, get_float, get_hook, predictions
from interpwidgets.widgets.messages import check_keys, get_choice, get_int
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import display_token, esc, frame, legend, sequential_rgb
from interpwidgets.widgets.tokens import prompt_tokens, token_strings

ACTIONS = ("ablate", "steer")
PER_TOKEN = 5  # strongest features per token sent for hover
TOKEN_LIST = 12  # strongest features listed for a clicked token
MAX_ALPHA = 1e4


class TokenFeatures(FeatureChoice, InterpWidget):
    """The tokens of `prompt` coloured by a feature of one of `saes` (an SAE, list, dict or `SAESet`).

    TokenFeatures(model, iw.sae.pretrained(model), "When Mary and John went to the store, John gave a drink to")

    Hover a token: its activation and strongest features. Click a token: list its strongest features;
    click one to recolour. "ablate" removes the chosen feature's contribution at its hook, "steer" adds
    `alpha * W_dec[feature]` there; the widget shows the next-token predictions before and after.
    """

    _esm = STATIC / "token_features.js"
    _css = STATIC / "token_features.css"
    _front_end_writable = frozenset({"hook", "feature", "action", "alpha"})

    tokens = List(Unicode(), read_only=True).tag(sync=True)
    top_k = Int(10, read_only=True).tag(sync=True)
    action = Enum(ACTIONS, default_value="ablate").tag(sync=True)
    alpha = Float(4.0).tag(sync=True)

    def __init__(
        self,
        model: Any,
        saes: Any,
        prompt: str | torch.Tensor | Sequence[int],
        *,
        hook: str | None = None,
        feature: int = 0,
        action: str = "ablate",
        alpha: float = 4.0,
        top_k: int = 10,
        selection: Selection | None = None,
    ) -> None:
        self.model = model
        self.saes = dictionaries(saes)
        self._tokens = prompt_tokens(model, prompt)
        with torch.no_grad():
            self._logits = model(self._tokens)[0].float().cpu()
        self._acts = {name: acts[0] for name, acts in feature_activations(model, list(self.saes.values()), self._tokens).items()}
        super().__init__(selection=selection)
        self.set_trait("tokens", token_strings(model, self._tokens[0].tolist()))
        self._publish_dictionaries()
        self.set_trait("top_k", _check_top_k(top_k, model.cfg.d_vocab))
        self.hook = hook if hook is not None else self.hooks[0]
        self.feature, self.action, self.alpha = feature, action, alpha

    # ---- state
    @property
    def sae(self) -> Any:
        """The dictionary of the chosen hook."""
        return self.saes[self.hook]

    def activations(self, hook: str | None = None) -> torch.Tensor:
        """Feature activations `[n_tokens, d_sae]` of the dictionary at `hook` (default: the chosen one)."""
        return self._acts[hook or self.hook]

    @validate("alpha")
    def _check_alpha(self, proposal: dict[str, Any]) -> float:
        if not abs(proposal["value"]) <= MAX_ALPHA:
            raise TraitError(f"alpha must be a finite number in [-{MAX_ALPHA:g}, {MAX_ALPHA:g}], got {proposal['value']}")
        return proposal["value"]

    def _hook_and_feature(self, params: dict[str, Any]) -> tuple[str, int]:
        hook = get_hook(params, list(self.saes))
        return hook, get_feature(params, int(self.saes[hook].cfg.d_sae))

    def _position(self, params: dict[str, Any]) -> int:
        return get_int(params, "position", 0, len(self.tokens) - 1)

    # ---- requests from the front end
    @handles("features")
    def _features(self, params: dict[str, Any]) -> dict[str, Any]:
        """{hook} -> the strongest features of every token: indices int32 [n, k], values float16 [n, k]."""
        check_keys(params, {"hook"})
        hook = get_hook(params, list(self.saes))
        acts = self._acts[hook]
        values, indices = acts.topk(min(PER_TOKEN, acts.shape[1]), dim=-1)
        return {"hook": hook, "indices": int32_array(indices), "values": float16_array(values)}

    @handles("activations")
    def _activations(self, params: dict[str, Any]) -> dict[str, Any]:
        """{hook, feature} -> the feature's activation on every token, float16 [n]."""
        check_keys(params, {"hook", "feature"})
        hook, feature = self._hook_and_feature(params)
        values = self._acts[hook][:, feature]
        return {"hook": hook, "feature": feature, "values": float16_array(values), "max": float(values.max().clamp_min(0))}

    @handles("token")
    def _token(self, params: dict[str, Any]) -> dict[str, Any]:
        """{hook, position} -> that token's strongest active features (int32) with activations (float16)."""
        check_keys(params, {"hook", "position"})
        hook = get_hook(params, list(self.saes))
        position = self._position(params)
        acts = self._acts[hook][position]
        values, indices = acts.topk(min(TOKEN_LIST, acts.numel()))
        active = values > 0
        return {
            "hook": hook,
            "position": position,
            "indices": int32_array(indices[active]),
            "values": float16_array(values[active]),
            "prompt_max": float16_array(self._acts[hook][:, indices[active]].max(dim=0).values),
        }

    @handles("intervene")
    def _intervene(self, params: dict[str, Any]) -> dict[str, Any]:
        """{hook, feature, action, alpha, position} -> next-token predictions at `position` before and after."""
        check_keys(params, {"hook", "feature", "action", "alpha", "position"})
        hook, feature = self._hook_and_feature(params)
        action = get_choice(params, "action", ACTIONS)
        alpha = get_float(params, "alpha", -MAX_ALPHA, MAX_ALPHA)
        position = self._position(params)
        after = self.intervened_logits(hook, feature, action, alpha)
        described = f"ablate {hook} #{feature}" if action == "ablate" else f"steer {hook} #{feature} by {alpha:g}"
        return {
            "hook": hook, "feature": feature, "action": action, "alpha": alpha, "position": position,
            "description": described,
            "activation": float(self._acts[hook][position, feature]),
            "before": predictions(top_predictions(self.model, self._logits[position], self.top_k)),
            "after": predictions(top_predictions(self.model, after[position], self.top_k)),
        }

    def intervened_logits(self, hook: str, feature: int, action: str, alpha: float = 0.0) -> torch.Tensor:
        """Logits `[n_tokens, vocab]` of the prompt with the feature ablated, or steered by `alpha`."""
        sae = self.saes[hook]
        intervention = ablate_features(self.model, sae, [feature]) if action == "ablate" else steer_feature(self.model, sae, feature, alpha)
        with torch.no_grad():
            return intervention.run(self._tokens)[0].float().cpu()

    # ---- static preview: the tokens coloured by the chosen feature
    def _static_html(self) -> str:
        values = self._acts[self.hook][:, self.feature].numpy()
        top = float(max(values.max(), 0.0))
        colours = sequential_rgb(values, top)
        spans = "".join(
            f'<span title="{esc(f"{i}: {v:.3g}")}" style="background:rgb{tuple(int(c) for c in rgb)};'
            f'color:{"#fff" if rgb.astype(float) @ np.array([0.2126, 0.7152, 0.0722]) < 140 else "#000"};'
            f'white-space:pre;border-radius:2px">{esc(display_token(t))}</span>'
            for i, (t, v, rgb) in enumerate(zip(self.tokens, values, colours))
        )
        body = (
            f'<div style="font-family:monospace;line-height:1.8;max-width:720px">{spans}</div>'
            f"{legend('sequential', 0.0, top or 1.0, f'activation of {self.hook} #{self.feature}')}"
        )
        return frame(f"Token features \u00b7 {self.hook} \u00b7 feature {self.feature}", body)


def _check_top_k(top_k: int, vocab: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= min(50, vocab):
        raise ValueError(f"top_k must be an integer in [1, {min(50, vocab)}], got {top_k!r}.")
    return top_k
