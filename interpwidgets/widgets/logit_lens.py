"""`LogitLens`: what each layer's residual stream would predict, as a layer x position grid.

The kernel keeps an `iw.lens.logit_lens` result. The browser gets, once, every cell's top-k next tokens (ids as
int32 indices into a small vocabulary of the tokens that occur, probabilities as float16) and the probability and
rank of each position's final prediction, which colours the grid by default. Following another token (`follow`,
{token: text or id}) is the one request: the kernel resolves the token and sends its probabilities and ranks
[layer, pos] as buffers, and the grid recolours by them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from traitlets import Dict, Int, List, Unicode

from interpwidgets.lens.logit_lens import LogitLensResult, logit_lens
from interpwidgets.models.tokens import token_strings
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.encoding import as_numpy, float16_array, int32_array
from interpwidgets.widgets.history import Ref, Snippet
from interpwidgets.widgets.messages import RequestError, check_keys, shown
from interpwidgets.widgets.prompting import PromptBox, check_prompt, unknown_warning
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import display_token, esc, frame, legend, png_data_uri, sequential_rgb

FINAL_UNITS = "probability of the model's final prediction"
MAX_TOKEN_TEXT = 40
RESULT_IS = "the LogitLensResult this widget shows"
STATIC_CELL_TEXT = 24 * 24  # cells beyond this many draw without their top token in the preview


class LogitLens(PromptBox, InterpWidget):
    """The logit lens of one prompt: an `iw.lens.logit_lens` result, or a model and a prompt.

    LogitLens(iw.lens.logit_lens(model, prompt, k=10))
    LogitLens(model, "When Mary and John went to the store, John gave a drink to", token=" Mary")

    Rows are the residual stream read at each layer (bottom: the embeddings, top: the final layer), columns the
    prompt's tokens; each cell shows its top next token. The colour is the probability of each column's final
    prediction, or of `token` (text of one token, or an id) when one is followed; type a token in the widget to
    follow it. A click on a cell lists its top-k and sets the shared `selection` (layer, token). The prompt box
    (or `set_prompt(text)`) shows another prompt: the kernel computes its logit lens with the same `k`.
    """

    _esm = STATIC / "logit_lens.js"
    _css = STATIC / "logit_lens.css"

    tokens = List(Unicode(), read_only=True).tag(sync=True)
    layers = List(Unicode(), read_only=True).tag(sync=True)
    #: the model layer of each row (resid_pre3 and resid_post3 -> 3), for the shared selection
    row_layers = List(Int(), read_only=True).tag(sync=True)
    k = Int(read_only=True).tag(sync=True)
    #: the strings and ids of every token that is some cell's top-k or a final prediction
    vocab = List(Unicode(), read_only=True).tag(sync=True)
    vocab_ids = Dict(read_only=True).tag(sync=True)
    #: {"index": int32 [layer, pos, k] into vocab, "probs": float16 [layer, pos, k]}
    top = Dict(read_only=True).tag(sync=True)
    #: {"index": int32 [pos] into vocab, "probs": float16 [layer, pos], "ranks": int32 [layer, pos]}
    final = Dict(read_only=True).tag(sync=True)
    #: the token id followed when the view opens (None: the final predictions)
    token = Int(None, allow_none=True, read_only=True).tag(sync=True)
    max_token_text = Int(MAX_TOKEN_TEXT, read_only=True).tag(sync=True)

    def __init__(
        self,
        source: LogitLensResult | Any,
        prompt: str | torch.Tensor | Sequence[int] | None = None,
        *,
        token: int | str | None = None,
        k: int = 10,
        selection: Selection | None = None,
    ) -> None:
        if isinstance(source, LogitLensResult):
            if prompt is not None:
                raise ValueError("a LogitLensResult comes with its prompt; pass LogitLens(result) or LogitLens(model, prompt).")
            result, warning = source, unknown_warning(source.model, source.token_ids)
        elif prompt is None:
            raise ValueError("LogitLens needs an iw.lens.logit_lens result, or a model and a prompt.")
        else:
            checked = check_prompt(source, prompt)
            result, warning = logit_lens(source, checked.tokens, k=k), checked.warning
        super().__init__(selection=selection)
        self._show(result)
        if token is not None:
            self.followed = self._follow(token)
            self.set_trait("token", self.followed["id"])
        shown = prompt if prompt is not None else result.token_ids
        self._init_prompt(result.model, shown, warning)

    def _show(self, result: LogitLensResult) -> None:
        """Shows `result`: its grid's traits, and the arrays the preview and `follow` read."""
        self.result = result
        self.followed: dict[str, Any] | None = None  # the last token followed (the preview colours by it)
        top_ids = _ints(result.top_ids)
        final_ids = _ints(result.final_ids)
        ids, inverse = np.unique(np.concatenate([top_ids.reshape(-1), final_ids]), return_inverse=True)
        top_index, final_index = inverse[: top_ids.size].reshape(top_ids.shape), inverse[top_ids.size :]
        self._vocab = token_strings(result.model, ids.tolist())
        self._top_index, self._top_probs = top_index, as_numpy(result.top_probs)
        self._final_probs, self._final_ranks = _final_of(result, final_ids)
        self._final_index = final_index
        self.set_trait("tokens", [str(t) for t in result.tokens])
        self.set_trait("layers", [str(name) for name in result.layers])
        self.set_trait("row_layers", [_layer_number(name) for name in result.layers])
        self.set_trait("k", int(top_ids.shape[-1]))
        self.set_trait("vocab", self._vocab)
        self.set_trait("vocab_ids", int32_array(ids))
        self.set_trait("top", {"index": int32_array(top_index), "probs": float16_array(self._top_probs)})
        self.set_trait("final", {"index": int32_array(final_index), "probs": float16_array(self._final_probs),
                                 "ranks": int32_array(self._final_ranks)})

    def _swap_prompt(self, text: str, tokens: torch.Tensor) -> Snippet:
        """The logit lens of the new prompt (same k), shown in place of the old; a followed token stays followed."""
        model, followed = self.result.model, self.followed
        self._show(logit_lens(model, tokens, k=self.k))
        if followed is not None:
            self.followed = self._follow(followed["id"])
        self.set_trait("token", None if followed is None else followed["id"])
        name = self._history.names.default("result", Ref(self.result, "result", RESULT_IS), "widget")[0]
        return self.snippet(name + " = iw.lens.logit_lens({model}, {text}, k={k})",
                            model=Ref(model, None, "the model this widget was built from"), text=text, k=self.k)

    # ---- the one request: follow a token
    @handles("follow")
    def _follow_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """{token: text of one token, or an id} -> that token's probabilities and ranks [layer, pos] in every cell."""
        check_keys(params, {"token"})
        token = params.get("token")
        self.followed = self._follow(token)
        label = self.followed["token"]
        step = self.record(
            f"follow {label!r}", "{result}.probs({token})" + ("" if isinstance(token, str) else f"  # {label!r}".replace("{", "{{").replace("}", "}}")),
            {"token_id": self.followed["id"]},
            result=Ref(self.result, "result", RESULT_IS), token=token,
        )
        self.followed["code"] = step.snippet
        return {
            "token": self.followed["token"],
            "id": self.followed["id"],
            "probs": float16_array(self.followed["probs"]),
            "ranks": int32_array(self.followed["ranks"]),
            "code": self.followed["code"],
        }

    def _follow(self, token: Any) -> dict[str, Any]:
        result = self.result
        if isinstance(token, bool) or not isinstance(token, (int, str)):
            raise RequestError(f"token must be the text of one token or a token id, got {token!r}")
        if isinstance(token, str) and not token:
            raise RequestError("type a token to follow (its text, e.g. ' Mary', or its id)")
        try:
            token_id = int(result.token_id(token))
        except (TypeError, ValueError) as error:
            raise RequestError(f"cannot follow {shown(token)}: {error}") from None
        label = token_strings(result.model, [token_id])[0]
        probs, ranks = as_numpy(result.probs(token_id)), _ints(result.ranks(token_id))
        return {"token": label, "id": token_id, "probs": probs, "ranks": ranks, "code": ""}

    # ---- static preview: the grid coloured as the view opens (or by the last followed token), with its legend
    def _static_html(self) -> str:
        followed = self.followed
        probs = followed["probs"] if followed else self._final_probs
        units = f"probability of {display_token(followed['token'])!r}" if followed else FINAL_UNITS
        svg = _grid_svg(probs, self._top_index[..., 0], self._vocab, self.layers, self.tokens)
        title = f"Logit lens \u00b7 {len(self.tokens)} tokens \u00b7 {len(self.layers)} layers"
        caption = "rows: residual stream (bottom: embeddings, top: final layer) \u00b7 columns: tokens \u00b7 cell text: top token"
        return frame(title, f"<div>{esc(caption)}</div>{svg}{legend('sequential', 0.0, 1.0, units)}")


def _ints(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values).astype(np.int64)


def _final_of(result: LogitLensResult, final_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[layer, pos] probability and rank (0 = top) of each position's final prediction, one lens row at a time."""
    index = torch.as_tensor(final_ids)[:, None]
    probs, ranks = [], []
    for row in range(len(result.layers)):
        logits = result.logits(row).float()  # [pos, vocab]
        chosen = logits.gather(1, index)
        probs.append(logits.softmax(-1).gather(1, index)[:, 0])
        ranks.append((logits > chosen).sum(-1))
    return torch.stack(probs).numpy(), torch.stack(ranks).numpy()


def _layer_number(name: str) -> int:
    """The model layer a residual-stream label belongs to ("resid_pre3" -> 3); 0 for names without one."""
    match = re.search(r"(\d+)$", name)
    return int(match[1]) if match else 0


def _grid_svg(probs: np.ndarray, top1: np.ndarray, vocab: list[str], layers: list[str], tokens: list[str]) -> str:
    """The lens grid as an SVG: colours as a PNG, final layer on top, each cell's top token when cells are few."""
    rows, cols = probs.shape
    cell_w, cell_h = max(6, min(56, 900 // cols)), max(6, min(22, 440 // rows))
    row_names = [_clip(name, 16) for name in reversed(layers)]
    col_names = [_clip(display_token(t), 14) for t in tokens]
    left = 12 + 6 * max(map(len, row_names), default=0)
    top = 12 + int(5.2 * max(map(len, col_names), default=0))
    rgb = sequential_rgb(probs[::-1], 1.0)
    text = [f'<text x="{left - 4}" y="{top + (r + 0.5) * cell_h:.1f}" text-anchor="end" dominant-baseline="middle">'
            f"{esc(row_names[r])}</text>" for r in range(rows)]
    text += [f'<text transform="translate({left + (c + 0.5) * cell_w:.1f},{top - 4}) rotate(-60)">{esc(col_names[c])}</text>'
             for c in range(cols)]
    if rows * cols <= STATIC_CELL_TEXT and cell_w >= 28:
        chars = max(2, cell_w // 6)
        for r in range(rows):
            layer = rows - 1 - r
            for c in range(cols):
                fill = "#fff" if probs[layer, c] > 0.55 else "#1f1f1f"
                text.append(f'<text x="{left + (c + 0.5) * cell_w:.1f}" y="{top + (r + 0.5) * cell_h:.1f}" '
                            f'text-anchor="middle" dominant-baseline="middle" style="fill:{fill};font-size:9px">'
                            f"{esc(_clip(display_token(vocab[top1[layer, c]]), chars))}</text>")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + cols * cell_w + 4}" height="{top + rows * cell_h + 4}" '
        f'style="font-size:10px;fill:currentColor;overflow:visible">'
        f'<image href="{png_data_uri(rgb)}" x="{left}" y="{top}" width="{cols * cell_w}" height="{rows * cell_h}" '
        f'preserveAspectRatio="none" style="image-rendering:pixelated"/>{"".join(text)}</svg>'
    )


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "\u2026"
