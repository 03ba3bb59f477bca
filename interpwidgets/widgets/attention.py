"""`AttentionPatterns`: every head's attention for one prompt, fetched lazily by the browser.

The view shows the heads of one layer as thumbnails and one head in full (query x key on canvas, or as
text: hover a token to see its attention over the others). The kernel keeps all patterns; the browser
asks for one layer's thumbnails (block maxima, uint8) and one head's pattern (uint8, lower triangle,
deflated) at a time, so 12 heads at 512 tokens cost well under 1 MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from traitlets import Enum, Int, List, TraitError, Unicode, validate

from interpwidgets.widgets.attention_data import UNITS, WEIGHTINGS, AttentionData, attention_from_model
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.encoding import uint8_array
from interpwidgets.widgets.messages import check_keys, get_choice, get_int
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import display_token, esc, frame, image, legend, max_pool, sequential_rgb

THUMBNAIL_SIDE = 64
TEXT_VIEW_FROM = 160  # prompts longer than this open in the text view
STATIC_MATRIX_SIDE = 256
STATIC_TOKENS = 400


class AttentionPatterns(InterpWidget):
    """Attention patterns of a prompt, or of a precomputed pattern tensor.

    AttentionPatterns(model, "When Mary and John went to the store, John gave a drink to")
    AttentionPatterns(pattern=tensor, tokens=str_tokens)   # [heads, q, k] or [layers, heads, q, k]

    `value_norms` ([layers, heads, k]) enables the value-weighted view for a pattern tensor; from a model
    it is computed (||v_j W_O|| per head). `layer` / `head` pick the head shown first; `view` is
    "matrix" or "text" (default: text for prompts over 160 tokens). Link to other widgets with `selection`.
    """

    _esm = STATIC / "attention.js"
    _css = STATIC / "attention.css"
    _front_end_writable = frozenset({"layer", "head", "view", "weighting"})

    tokens = List(Unicode(), read_only=True).tag(sync=True)
    n_layers = Int(read_only=True).tag(sync=True)
    n_heads = Int(read_only=True).tag(sync=True)
    weightings = List(Unicode(), read_only=True).tag(sync=True)
    layer = Int(0).tag(sync=True)
    head = Int(0).tag(sync=True)
    view = Enum(("matrix", "text"), default_value="matrix").tag(sync=True)
    weighting = Enum(WEIGHTINGS, default_value="attention").tag(sync=True)

    def __init__(
        self,
        model: Any = None,
        prompt: str | torch.Tensor | Sequence[int] | None = None,
        *,
        pattern: torch.Tensor | np.ndarray | None = None,
        tokens: Sequence[str] | None = None,
        value_norms: torch.Tensor | np.ndarray | None = None,
        layer: int = 0,
        head: int = 0,
        view: str | None = None,
        weighting: str = "attention",
        selection: Selection | None = None,
    ) -> None:
        self._data = _attention_data(model, prompt, pattern, tokens, value_norms)
        data = self._data
        super().__init__(selection=selection)
        self.set_trait("tokens", data.tokens)
        self.set_trait("n_layers", data.n_layers)
        self.set_trait("n_heads", data.n_heads)
        self.set_trait("weightings", data.weightings)
        self.layer, self.head, self.weighting = layer, head, weighting
        self.view = view or ("text" if data.n_tokens > TEXT_VIEW_FROM else "matrix")
        if self.selection.layer is None and self.selection.head is None:
            self.selection.layer, self.selection.head = layer, head

    @property
    def data(self) -> AttentionData:
        return self._data

    # ---- trait checks (values set from Python or from the front end)
    @validate("layer")
    def _check_layer(self, proposal: dict[str, Any]) -> int:
        return _in_range("layer", proposal["value"], self._data.n_layers)

    @validate("head")
    def _check_head(self, proposal: dict[str, Any]) -> int:
        return _in_range("head", proposal["value"], self._data.n_heads)

    @validate("weighting")
    def _check_weighting(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in self._data.weightings:
            raise TraitError(f"weighting {proposal['value']!r} needs value norms; available: {self._data.weightings}")
        return proposal["value"]

    # ---- requests from the front end
    def _layer_and_weighting(self, params: dict[str, Any], keys: set[str]) -> tuple[int, str]:
        check_keys(params, keys)
        layer = get_int(params, "layer", 0, self._data.n_layers - 1)
        return layer, get_choice(params, "weighting", self._data.weightings)

    @handles("thumbnails")
    def _thumbnails(self, params: dict[str, Any]) -> dict[str, Any]:
        """{layer, weighting} -> block-maximum thumbnails of every head of the layer, [heads, t, t] uint8."""
        layer, weighting = self._layer_and_weighting(params, {"layer", "weighting"})
        thumbnails = self._data.thumbnails(layer, weighting, THUMBNAIL_SIDE)
        return {
            "layer": layer,
            "weighting": weighting,
            "thumbnails": uint8_array(thumbnails, compress=True),
            "domain_max": self._data.domain_max(layer, weighting),
            "units": UNITS[weighting],
        }

    @handles("pattern")
    def _pattern(self, params: dict[str, Any]) -> dict[str, Any]:
        """{layer, head, weighting} -> one head's full pattern, uint8, deflated (lower triangle when causal)."""
        layer, weighting = self._layer_and_weighting(params, {"layer", "head", "weighting"})
        head = get_int(params, "head", 0, self._data.n_heads - 1)
        values, layout = self._data.packed(layer, head, weighting)
        return {
            "layer": layer,
            "head": head,
            "weighting": weighting,
            "layout": layout,
            "pattern": uint8_array(values, compress=True),
            "domain_max": self._data.domain_max(layer, weighting),
            "units": UNITS[weighting],
        }

    # ---- static preview: the layer's heads, the selected head, the tokens
    def _static_html(self) -> str:
        data, layer, head, weighting = self._data, self.layer, self.head, self.weighting
        top = data.domain_max(layer, weighting)
        thumbs = data.thumbnails(layer, weighting, THUMBNAIL_SIDE).numpy()
        cells = "".join(
            f'<figure style="margin:0;text-align:center;font-size:11px">'
            f"{image(sequential_rgb(thumb, top), 64, 64, f'layer {layer} head {h}')}L{layer}H{h}</figure>"
            for h, thumb in enumerate(thumbs)
        )
        matrix = data.head(layer, head, weighting).numpy()
        if data.is_causal(layer):
            matrix = np.where(np.triu(np.ones_like(matrix, dtype=bool), 1), np.nan, matrix)
        pooled = max_pool(matrix, STATIC_MATRIX_SIDE)
        side = min(400, max(pooled.shape[0], data.n_tokens * 8))
        tokens = " ".join(f"{i}:{display_token(t)}" for i, t in enumerate(data.tokens[:STATIC_TOKENS]))
        more = f" \u2026 and {data.n_tokens - STATIC_TOKENS} more" if data.n_tokens > STATIC_TOKENS else ""
        body = (
            f'<div style="display:flex;gap:12px;flex-wrap:wrap;align-items:flex-start">'
            f'<div style="display:grid;grid-template-columns:repeat(4,70px);gap:4px">{cells}</div>'
            f"<div><div>L{layer}H{head}: rows are queries, columns keys</div>"
            f"{image(sequential_rgb(pooled, top), side, side, f'layer {layer} head {head} pattern')}</div></div>"
            f"{legend('sequential', 0.0, top, UNITS[weighting])}"
            f'<div style="font-family:monospace;font-size:11px;white-space:pre-wrap;max-height:120px;overflow:auto;'
            f'margin-top:6px">{esc(tokens + more)}</div>'
        )
        return frame(f"Attention patterns \u00b7 {data.n_tokens} tokens", body)


def _in_range(name: str, value: int, size: int) -> int:
    if not 0 <= value < size:
        raise TraitError(f"{name} must be between 0 and {size - 1}, got {value}")
    return value


def _float_tensor(values: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float32)
    return torch.as_tensor(np.asarray(values, dtype=np.float32))


def _attention_data(model, prompt, pattern, tokens, value_norms) -> AttentionData:
    if pattern is not None:
        if model is not None or prompt is not None:
            raise ValueError("pass either a model and a prompt, or pattern= and tokens=, not both.")
        if tokens is None:
            raise ValueError("a pattern tensor needs its tokens: AttentionPatterns(pattern=..., tokens=[...]).")
        norms = None if value_norms is None else _float_tensor(value_norms)
        return AttentionData(list(tokens), _float_tensor(pattern), norms)
    if model is None or prompt is None:
        raise ValueError("AttentionPatterns needs a model and a prompt, or pattern= and tokens=.")
    if value_norms is not None or tokens is not None:
        raise ValueError("tokens= and value_norms= go with pattern=; from a model they are computed.")
    return attention_from_model(model, prompt)
