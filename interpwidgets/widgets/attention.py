"""`AttentionPatterns`: every head's attention for one prompt, fetched lazily by the browser.

The view shows the heads of one layer as thumbnails and one head in full (query x key on canvas, or as
text: hover a token to see its attention over the others). The kernel keeps the `iw.lens.AttentionResult`;
the browser writes the `layer`, `head` and `weighting` traits and then asks for that layer's thumbnails
(block maxima, uint8) or that head's pattern (float16, lower triangle: a weight of 3e-4 reads 3e-4), so 12 heads
at 512 tokens cost well under 1 MB. Built from a model, the view has a prompt box (`prompting.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from traitlets import Enum, Int, List, TraitError, Unicode, validate

from interpwidgets.lens.attention import UNITS, WEIGHTINGS, AttentionResult, attention_patterns
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.encoding import float16_array, uint8_array
from interpwidgets.widgets.history import Ref, Snippet
from interpwidgets.widgets.messages import check_keys
from interpwidgets.widgets.prompting import PromptBox, check_prompt
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import display_token, esc, frame, image, legend, max_pool, sequential_rgb

THUMBNAIL_SIDE = 64
TEXT_VIEW_FROM = 160  # prompts longer than this open in the text view
STATIC_MATRIX_SIDE = 256
STATIC_TOKENS = 400
RESULT_IS = "the AttentionResult this widget shows"


class AttentionPatterns(PromptBox, InterpWidget):
    """Attention patterns of every head: an `iw.lens.attention_patterns` result, a model and a prompt, or a tensor.

    AttentionPatterns(iw.lens.attention_patterns(model, prompt))
    AttentionPatterns(model, "When Mary and John went to the store, John gave a drink to")   # computes that result
    AttentionPatterns(pattern=tensor, tokens=str_tokens)   # [heads, q, k] or [layers, heads, q, k]

    `value_norms` ([layers, heads, k]) enables the value-weighted view for a pattern tensor. `layer` / `head`
    pick the head shown first; `view` is "matrix" or "text" (default: text for prompts over 160 tokens).
    Link to other widgets with `selection`. Built from a model, the view has a prompt box: type a prompt, press
    Enter, and the kernel computes its patterns (`set_prompt(text)` from Python). `prompt_box=False` hides the box
    (and its warning line) where another view's box drives this one (`Explorer`); `set_prompt` still works.
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
        source: AttentionResult | Any = None,
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
        prompt_box: bool = True,
    ) -> None:
        result, warning = _result(source, prompt, pattern, tokens, value_norms)
        super().__init__(selection=selection)
        self._show(result)
        self.set_trait("n_layers", result.n_layers)
        self.set_trait("n_heads", result.n_heads)
        self.set_trait("weightings", result.weightings)
        self.layer, self.head, self.weighting = layer, head, weighting
        self.view = view or ("text" if result.n_tokens > TEXT_VIEW_FROM else "matrix")
        if self.selection.layer is None and self.selection.head is None:
            self.selection.layer, self.selection.head = layer, head
        from_model = not isinstance(source, AttentionResult) and pattern is None
        self._init_prompt(source if from_model else None, prompt, warning, box=prompt_box)

    def _show(self, result: AttentionResult) -> None:
        self._result = result
        self._causal: dict[int, bool] = {}
        self._domain_max: dict[tuple[int, str], float] = {}
        self._thumbnails: dict[tuple[int, str], torch.Tensor] = {}
        self.set_trait("tokens", result.tokens)

    def _swap_prompt(self, text: str, tokens: torch.Tensor) -> Snippet:
        """The patterns of the new prompt (same model: same layers and heads), shown in place of the old."""
        model = self._prompt_model
        self._show(attention_patterns(model, tokens))
        name = self._history.names.default("result", Ref(self._result, "result", RESULT_IS), "widget")[0]
        return self.snippet(name + " = iw.lens.attention_patterns({model}, {text})",
                            model=Ref(model, None, "the model this widget was built from"), text=text)

    @property
    def result(self) -> AttentionResult:
        """The patterns (and value norms) this widget shows."""
        return self._result

    # ---- trait checks (values set from Python or from the front end)
    @validate("layer")
    def _check_layer(self, proposal: dict[str, Any]) -> int:
        return _in_range("layer", proposal["value"], self._result.n_layers)

    @validate("head")
    def _check_head(self, proposal: dict[str, Any]) -> int:
        return _in_range("head", proposal["value"], self._result.n_heads)

    @validate("weighting")
    def _check_weighting(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in self._result.weightings:
            raise TraitError(f"weighting {proposal['value']!r} needs value norms; available: {self._result.weightings}")
        return proposal["value"]

    # ---- requests from the front end: verbs only; what to send is the layer / head / weighting traits
    @handles("thumbnails")
    def _thumbnails_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """{} -> block-maximum thumbnails of every head of `layer`, [heads, t, t] uint8, in `weighting`."""
        check_keys(params, ())
        layer, weighting = self.layer, self.weighting
        return {
            "layer": layer,
            "weighting": weighting,
            "thumbnails": uint8_array(self._thumbnails_of(layer, weighting), compress=True),
            "domain_max": self._top(layer, weighting),
            "units": UNITS[weighting],
        }

    @handles("pattern")
    def _pattern_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """{} -> the pattern of head (`layer`, `head`) in `weighting`, float16 (lower triangle when causal): a weight
        of 3e-4 reads 3e-4, not the 0 that a uint8 code of a [0, 1] scale would make it."""
        check_keys(params, ())
        layer, head, weighting = self.layer, self.head, self.weighting
        pattern = self._result.pattern(layer, head, weighting=weighting)
        if self._is_causal(layer):
            rows, cols = torch.tril_indices(self._result.n_tokens, self._result.n_tokens)
            values, layout = pattern[rows, cols], "tril"
        else:
            values, layout = pattern.reshape(-1), "full"
        step = self.record(f"show L{layer}H{head} ({weighting})", "{result}.pattern({layer}, {head}, weighting={weighting})",
                           {"max": float(pattern.max())}, layer=layer, head=head, weighting=weighting,
                           result=Ref(self._result, "result", RESULT_IS))
        return {
            "code": step.snippet,
            "layer": layer,
            "head": head,
            "weighting": weighting,
            "layout": layout,
            "pattern": float16_array(values),
            "domain_max": self._top(layer, weighting),
            "units": UNITS[weighting],
        }

    # ---- what the requests and the preview share (cached: a layer is asked for again and again)
    def _is_causal(self, layer: int) -> bool:
        if layer not in self._causal:
            self._causal[layer] = self._result.is_causal(layer)
        return self._causal[layer]

    def _top(self, layer: int, weighting: str) -> float:
        """Top of the colour scale shared by the heads of a layer: 1 for probabilities, else the layer maximum."""
        if weighting == "attention":
            return 1.0
        if (layer, weighting) not in self._domain_max:
            self._domain_max[layer, weighting] = max(
                float(self._result.pattern(layer, h, weighting=weighting).max()) for h in range(self._result.n_heads))
        return self._domain_max[layer, weighting]

    def _thumbnails_of(self, layer: int, weighting: str) -> torch.Tensor:
        """[heads, t, t] block maxima of each head's pattern with t <= THUMBNAIL_SIDE (a peak stays visible)."""
        if (layer, weighting) not in self._thumbnails:
            block = max(1, -(-self._result.n_tokens // THUMBNAIL_SIDE))
            heads = [self._result.pattern(layer, h, weighting=weighting)[None, None] for h in range(self._result.n_heads)]
            self._thumbnails[layer, weighting] = torch.stack(
                [F.max_pool2d(p, block, block, ceil_mode=True)[0, 0] if block > 1 else p[0, 0] for p in heads])
        return self._thumbnails[layer, weighting]

    # ---- static preview: the layer's heads, the selected head, the tokens
    def _static_html(self) -> str:
        result, layer, head, weighting = self._result, self.layer, self.head, self.weighting
        top = self._top(layer, weighting)
        cells = "".join(
            f'<figure style="margin:0;text-align:center;font-size:11px">'
            f"{image(sequential_rgb(thumb, top), 64, 64, f'layer {layer} head {h}')}L{layer}H{h}</figure>"
            for h, thumb in enumerate(self._thumbnails_of(layer, weighting).numpy())
        )
        matrix = result.pattern(layer, head, weighting=weighting).numpy()
        if self._is_causal(layer):
            matrix = np.where(np.triu(np.ones_like(matrix, dtype=bool), 1), np.nan, matrix)
        pooled = max_pool(matrix, STATIC_MATRIX_SIDE)
        side = min(400, max(pooled.shape[0], result.n_tokens * 8))
        tokens = " ".join(f"{i}:{display_token(t)}" for i, t in enumerate(result.tokens[:STATIC_TOKENS]))
        more = f" \u2026 and {result.n_tokens - STATIC_TOKENS} more" if result.n_tokens > STATIC_TOKENS else ""
        body = (
            f'<div style="display:flex;gap:12px;flex-wrap:wrap;align-items:flex-start">'
            f'<div style="display:grid;grid-template-columns:repeat(4,70px);gap:4px">{cells}</div>'
            f"<div><div>L{layer}H{head}: rows are queries, columns keys</div>"
            f"{image(sequential_rgb(pooled, top), side, side, f'layer {layer} head {head} pattern')}</div></div>"
            f"{legend('sequential', 0.0, top, UNITS[weighting])}"
            f'<div style="font-family:monospace;font-size:11px;white-space:pre-wrap;max-height:120px;overflow:auto;'
            f'margin-top:6px">{esc(tokens + more)}</div>'
        )
        return frame(f"Attention patterns \u00b7 {result.n_tokens} tokens", body)


def _in_range(name: str, value: int, size: int) -> int:
    if not 0 <= value < size:
        raise TraitError(f"{name} must be between 0 and {size - 1}, got {value}")
    return value


def _result(source: Any, prompt: Any, pattern: Any, tokens: Any, value_norms: Any) -> tuple[AttentionResult, str]:
    """The result to show and its prompt's unknown-token warning, from exactly one of: a result, a model and a
    prompt (checked by `check_prompt`), or pattern= and tokens=."""
    if isinstance(source, AttentionResult):
        if any(x is not None for x in (prompt, pattern, tokens, value_norms)):
            raise ValueError("an AttentionResult comes with its tokens and patterns; pass nothing else with it.")
        return source, ""
    if pattern is not None:
        if source is not None or prompt is not None:
            raise ValueError("pass either a model and a prompt, or pattern= and tokens=, not both.")
        if tokens is None:
            raise ValueError("a pattern tensor needs its tokens: AttentionPatterns(pattern=..., tokens=[...]).")
        norms = None if value_norms is None else _float_tensor(value_norms)
        return AttentionResult(list(tokens), _float_tensor(pattern), norms), ""
    if source is None or prompt is None:
        raise ValueError("AttentionPatterns needs an AttentionResult, a model and a prompt, or pattern= and tokens=.")
    if value_norms is not None or tokens is not None:
        raise ValueError("tokens= and value_norms= go with pattern=; from a model they are computed.")
    checked = check_prompt(source, prompt)
    return attention_patterns(source, checked.tokens), checked.warning


def _float_tensor(values: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float32)
    return torch.as_tensor(np.asarray(values, dtype=np.float32))
