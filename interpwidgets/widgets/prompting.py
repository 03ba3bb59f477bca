"""The prompt box: type a prompt inside a view, press Enter, and the kernel retokenises it and the view redraws.

One validation for every prompt a view takes, from Python or from its box (`check_prompt`): an empty prompt, one
longer than the model's context, or one that is mostly unknown tokens (`<unk>`, a tokenizer that has one) is refused
with a message; a few unknown tokens are accepted with a warning line the view shows. The teaching tokenizer has no
unknown token: it spells words outside its vocabulary byte by byte, which the model has seen only in a few
contexts, so those prompts get a warning too ("12 of 19 tokens spell words outside the model's vocabulary, byte by
byte: 'xyzzy', 'Quantum'"), which says when most of the prompt is outside the training distribution.

A widget that takes a prompt mixes in `PromptBox` and writes `_swap_prompt`, which hands the new tokens to its engine
function (the widget runs no model code), swaps its result and returns the call as code:

    class MyView(PromptBox, InterpWidget):
        def __init__(self, model, prompt):
            checked = check_prompt(model, prompt)
            self.result = my_lens(model, checked.tokens)
            super().__init__()
            self._init_prompt(model, prompt, checked.warning)

        def _swap_prompt(self, text, tokens):
            self.result = my_lens(self._prompt_model, tokens)
            self.set_trait("tokens", self.result.tokens)
            return self.snippet("{result} = iw.lens.my_lens({model}, {text})", ...)

The browser sends `prompt {text}`; the reply (after the traits, in one update, with `prompt_version` + 1) carries
the tokens, the warning and the code. A view built without a model (from a result, or a tensor) has no box
(`prompt_box` is False). Front end: js/lib/prompt.ts.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from traitlets import Bool, HasTraits, Int, Unicode

from interpwidgets.data.tokenizer import fallback_ids
from interpwidgets.models.tokens import has_tokenizer, prompt_tokens, token_text
from interpwidgets.widgets.base import handles
from interpwidgets.widgets.history import Snippet, Step
from interpwidgets.widgets.messages import RequestError, check_keys

MAX_NAMED_WORDS = 8
MAX_PROMPT_CHARS = 100_000


@dataclass(frozen=True)
class CheckedPrompt:
    """A prompt that passed `check_prompt`: tokens [1, n] (on the model's device) and the warning to show ("" if none)."""

    tokens: torch.Tensor
    warning: str


def check_prompt(model: Any, prompt: str | torch.Tensor | Sequence[int]) -> CheckedPrompt:
    """Validates a prompt (text, or token ids [n] / [1, n]) for `model`; raises ValueError saying what is wrong.

    Refused: empty (or whitespace only) text, more tokens than the model's context, more than half of the text's
    tokens being the tokenizer's unknown token (a tokenizer with <unk>). Accepted with a warning: fewer unknown
    tokens, and any number of byte-spelled ones (the teaching tokenizer's fallback, which loses nothing).
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("the prompt is empty: type some text.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt has {len(prompt):,} characters; this view takes at most {MAX_PROMPT_CHARS:,}.")
    tokens = prompt_tokens(model, prompt)
    outside = _outside(model, prompt, tokens[0].tolist())
    if outside.kind == "unknown" and outside.count * 2 > outside.total:
        raise ValueError(f"most of the prompt is outside the model's vocabulary: {outside.count} of {outside.total} "
                         f"tokens are unknown (<unk>){_named(outside.words)}. Use words the model knows.")
    return CheckedPrompt(tokens, outside.warning())


def unknown_warning(model: Any, prompt: str | torch.Tensor | Sequence[int]) -> str:
    """The warning line for a prompt's unknown tokens ("" if none), never refusing (for results made elsewhere)."""
    if not has_tokenizer(model):
        return ""
    ids = model.to_tokens(prompt, truncate=False)[0].tolist() if isinstance(prompt, str) else torch.as_tensor(prompt).reshape(-1).tolist()
    text = prompt if isinstance(prompt, str) else prompt_as_text(model, ids)  # token ids: the words named from their text
    return _outside(model, text, ids).warning()


@dataclass(frozen=True)
class _Outside:
    """The prompt's tokens outside the model's vocabulary: `kind` "unknown" (<unk>) or "spelled" (byte fallback)."""

    kind: str
    count: int
    total: int
    words: list[str]

    def warning(self) -> str:
        if not self.count:
            return ""
        if self.kind == "unknown":
            return f"{self.count} of {self.total} tokens are outside the model's vocabulary (<unk>){_named(self.words)}"
        most = ("most of the prompt is outside the model's training distribution: " if self.count * 2 > self.total else "")
        return f"{most}{self.count} of {self.total} tokens spell words outside the model's vocabulary, byte by byte{_named(self.words)}"


def _outside(model: Any, prompt: Any, ids: list[int]) -> _Outside:
    """Counts over the prompt's own tokens (without a BOS the model prepended), and the words they come from."""
    tokenizer = getattr(model, "tokenizer", None)
    bos = getattr(tokenizer, "bos_token_id", None)
    own = ids[1:] if len(ids) > 1 and ids[0] == bos else ids
    spelled = fallback_ids(tokenizer) if tokenizer is not None else frozenset()
    unk = getattr(tokenizer, "unk_token_id", None)
    if spelled:
        kind, outside = "spelled", spelled
    elif unk is not None and unk not in (bos, getattr(tokenizer, "eos_token_id", None)):
        kind, outside = "unknown", frozenset({unk})
    else:  # byte-level BPE with no unknown token of its own: every text is in the vocabulary
        return _Outside("unknown", 0, len(own), [])
    count = sum(i in outside for i in own)
    words = _outside_words(tokenizer, prompt, outside) if count and isinstance(prompt, str) else []
    return _Outside(kind, count, len(own), words)


def _outside_words(tokenizer: Any, text: str, outside: frozenset[int]) -> list[str]:
    """The distinct whitespace-separated words of `text` that hold a token in `outside`, in order."""
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        starts = [a for i, (a, b) in zip(encoded["input_ids"], encoded["offset_mapping"]) if i in outside and b > a]
    except (TypeError, KeyError, NotImplementedError, ValueError):  # a slow tokenizer: word by word
        return [word for word in text.split() if outside & set(tokenizer.encode(" " + word, add_special_tokens=False))]
    words = []
    for a in starts:
        if text[a].isspace():
            continue  # a space spelled on its own belongs to the next word
        left = a
        while left > 0 and not text[left - 1].isspace():
            left -= 1
        right = a
        while right < len(text) and not text[right].isspace():
            right += 1
        words.append(text[left:right].strip(string.punctuation) or text[left:right])  # "xyzzy," -> "xyzzy"
    return list(dict.fromkeys(words))


def _named(words: list[str]) -> str:
    """": 'xyzzy', 'Quantum'" (at most MAX_NAMED_WORDS of them), or "" without words."""
    if not words:
        return ""
    shown = ", ".join(repr(word) for word in words[:MAX_NAMED_WORDS])
    return ": " + shown + (f" and {len(words) - MAX_NAMED_WORDS} more" if len(words) > MAX_NAMED_WORDS else "")


def prompt_as_text(model: Any, prompt: Any) -> str:
    """The text a prompt box opens with: the prompt itself, or token ids decoded (special tokens dropped)."""
    if isinstance(prompt, str):
        return prompt
    ids = torch.as_tensor(prompt).reshape(-1).tolist()
    return token_text(model, ids, skip_special_tokens=True)


class PromptBox(HasTraits):
    """Mixin for an `InterpWidget` that takes a prompt: the `prompt` request and the traits its box reads."""

    #: whether the view has a prompt box (it was built from a model with a tokenizer)
    prompt_box = Bool(False, read_only=True).tag(sync=True)
    #: the prompt shown, as text (what the box opens with)
    prompt_text = Unicode("", read_only=True).tag(sync=True)
    #: the unknown-token warning of the prompt shown ("" if none)
    prompt_warning = Unicode("", read_only=True).tag(sync=True)
    #: counts the prompts swapped in: a view redraws from the new traits when it changes
    prompt_version = Int(0, read_only=True).tag(sync=True)

    _prompt_model: Any = None
    _prompt_shown: bool = True  # False: a composite's own box drives this view (no box, no warning line here)

    def _init_prompt(self, model: Any, prompt: Any, warning: str, *, box: bool = True) -> None:
        """Call at the end of `__init__`: `model` (None: no box), the prompt shown and its warning. `box=False`
        hides the box and the warning (a composite shows them once) but keeps `set_prompt` working."""
        self._prompt_model = model if model is not None and has_tokenizer(model) else None
        self._prompt_shown = box
        self.set_trait("prompt_box", self._prompt_model is not None and box)
        self.set_trait("prompt_text", prompt_as_text(model, prompt) if model is not None else "")
        self.set_trait("prompt_warning", warning if box else "")

    def _swap_prompt(self, text: str, tokens: torch.Tensor) -> Snippet:
        """Computes the view's result for `tokens` [1, n] (of `text`) through its engine function, shows it (result
        and traits) and returns the call as code. Override in each widget."""
        raise NotImplementedError

    def set_prompt(self, text: str) -> str:
        """Shows `text` instead of the current prompt (what the box does); returns the warning ("" if none)."""
        return self._set_prompt(text)[0]

    def _set_prompt(self, text: str) -> tuple[str, Step]:
        if self._prompt_model is None:
            raise ValueError(f"this {type(self).__name__} was built without a model, so it cannot take a new prompt: "
                             f"build it from a model and a prompt.")
        checked = check_prompt(self._prompt_model, text)
        with self.hold_sync():  # the traits reach the browser as one update, before the reply
            snippet = self._swap_prompt(text, checked.tokens)
            self.set_trait("prompt_text", text)
            self.set_trait("prompt_warning", checked.warning if self._prompt_shown else "")
            self.set_trait("prompt_version", self.prompt_version + 1)
        action = f"prompt {text[:40]!r}" + ("\u2026" if len(text) > 40 else "")
        return checked.warning, self.record(action, snippet, {"n_tokens": int(checked.tokens.shape[1])})

    # ---- the request from the box
    @handles("prompt")
    def _prompt_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """{text} -> the view shows that prompt: {tokens, warning, code} (its traits are already updated)."""
        check_keys(params, {"text"})
        text = params.get("text")
        if not isinstance(text, str):
            raise RequestError(f"text must be a string, got {type(text).__name__}")
        try:
            warning, step = self._set_prompt(text)
        except ValueError as error:
            raise RequestError(str(error)) from None
        return {"text": text, "tokens": list(self.tokens), "warning": warning, "code": step.snippet}
