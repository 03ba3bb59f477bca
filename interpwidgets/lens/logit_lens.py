"""The logit lens (nostalgebraist 2020): what the unembedding reads from the residual stream at every layer.

Each row is one residual stream (`resid_pre0` .. `resid_pre{L-1}`, then the final `resid_post{L-1}`), read at
every position through the model's own final norm with that row's own normalisation scale (recomputed, not
frozen) and its unembedding, and soft-capped like the real logits where the model soft-caps them (Gemma 2). So
the last row is the model's output. Only the normalised residuals `[layer, pos, d_model]` are kept; a row's
logits `[pos, vocab]` are computed when asked for, never all rows at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from interpwidgets.config import progress_enabled
from interpwidgets.models.tokens import prompt_tokens, require_tokenizer, token_strings
from interpwidgets.tasks.metric import check_finite

TOO_LONG = "The logit lens reads one prompt that fits the model's context; shorten it."


def logit_soft_cap(model) -> float | None:
    """The model's final-logit soft-cap (Gemma 2: logits = cap * tanh(pre-cap logits / cap)), or None."""
    cap = getattr(model.cfg, "output_logits_soft_cap", None)
    return float(cap) if cap is not None and cap > 0 else None


def unembed(model, normed: torch.Tensor) -> torch.Tensor:
    """Logits `[..., vocab]` (soft-capped like the model's) of final-norm outputs `[..., d_model]`."""
    logits = model.unembed(normed)
    cap = logit_soft_cap(model)
    return cap * torch.tanh(logits / cap) if cap is not None else logits


MAX_TOKEN_CHARS = 256
"""No token of any tokenizer we read is longer: a longer text is refused before it is tokenized."""


def token_id(model, token: int | str) -> int:
    """A token id in range, or the id of a string that the tokenizer encodes as exactly one token."""
    vocab = model.cfg.d_vocab
    if isinstance(token, str):
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError(f"a {len(token):,}-character text ({token[:20]!r}...) is not one token; pass a single token "
                             "(e.g. ' Mary') or its id.")
        require_tokenizer(model, f"the token {token!r}", "pass its token id (an int) instead")
        tokenizer = model.tokenizer
        ids = tokenizer.encode(token, add_special_tokens=False)
        unknown = ids == [tokenizer.unk_token_id] and token != tokenizer.unk_token
        if unknown:
            raise ValueError(f"{token!r} is not in the tokenizer's vocabulary (it encodes as the unknown token).")
        if len(ids) != 1:
            pieces = token_strings(model, ids)
            raise ValueError(
                f"{token!r} is not one token: the tokenizer encodes it as {len(ids)} tokens {pieces}. "
                "Pass a single token (e.g. with its leading space, ' Mary') or its id."
            )
        return int(ids[0])
    if isinstance(token, torch.Tensor) and token.numel() == 1 and not token.is_floating_point():
        token = int(token)
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError(f"a token must be an int id or a one-token string, got {token!r}.")
    if not 0 <= token < vocab:
        raise ValueError(f"token id {token} is out of range; ids lie in [0, {vocab - 1}].")
    return token


@dataclass
class LogitLensResult:
    """The logit lens of one prompt.

    tokens: [pos] display strings; token_ids: [pos] int64. layers: [layer] row labels "resid_pre0" ..
    "resid_pre{L-1}", "resid_post{L-1}" (L + 1 rows). top_ids / top_probs: [layer, pos, k] each cell's k most
    probable next tokens (most likely first) and their probabilities (CPU). final_ids: [pos] the model's own
    prediction (argmax of its real logits). `logits(layer)`, `probs(token)` and `ranks(token)` answer for any
    token from the kept normalised residuals.
    """

    tokens: list[str]
    token_ids: torch.Tensor
    layers: list[str]
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    final_ids: torch.Tensor
    model: Any = field(repr=False)
    normed: torch.Tensor = field(repr=False)
    """[layer, pos, d_model] each row's final-norm output, on the model's device."""

    @property
    def n_layers(self) -> int:
        """The number of rows (the model's layers + 1)."""
        return len(self.layers)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def _row(self, layer: int) -> int:
        if isinstance(layer, bool) or not isinstance(layer, int) or not -self.n_layers <= layer < self.n_layers:
            raise IndexError(f"layer {layer!r} is out of range; this lens has {self.n_layers} rows (0-{self.n_layers - 1}).")
        return layer % self.n_layers

    def logits(self, layer: int) -> torch.Tensor:
        """[pos, d_vocab] float32 (CPU): the logits the unembedding reads from row `layer`."""
        with torch.no_grad():
            return unembed(self.model, self.normed[self._row(layer)][None])[0].float().cpu()

    def token_id(self, token: int | str) -> int:
        """The id of `token` (an id, or a string that is exactly one token; a ValueError otherwise)."""
        return token_id(self.model, token)

    def probs(self, token: int | str) -> torch.Tensor:
        """[layer, pos] float32: the probability of `token` at every cell."""
        index = self.token_id(token)
        return torch.stack([self.logits(row).softmax(-1)[:, index] for row in range(self.n_layers)])

    def ranks(self, token: int | str) -> torch.Tensor:
        """[layer, pos] int64: the rank of `token` at every cell (0 = the most probable token)."""
        index = self.token_id(token)
        rows = []
        for row in range(self.n_layers):
            logits = self.logits(row)
            rows.append((logits > logits[:, index : index + 1]).sum(-1))
        return torch.stack(rows)

    def top(self, layer: int, pos: int, k: int = 10) -> list[tuple[str, float]]:
        """The `k` most probable next tokens at one cell, as (token string, probability), most likely first."""
        if not -self.n_tokens <= pos < self.n_tokens:
            raise IndexError(f"position {pos} is out of range; the prompt has {self.n_tokens} tokens.")
        probs = self.logits(layer)[pos].softmax(-1)
        values, ids = probs.topk(min(max(int(k), 1), probs.numel()))
        return list(zip(token_strings(self.model, ids.tolist()), values.tolist()))

    def plot(self, ax=None, *, token: int | str | None = None):
        """A layer x position grid: each cell shows its top token, coloured by the probability of `token` (default:
        each column's final prediction, `final_ids[pos]`); returns the Axes."""
        import matplotlib.pyplot as plt

        if token is None:
            values = torch.stack([self.logits(row).softmax(-1).gather(1, self.final_ids[:, None])[:, 0]
                                  for row in range(self.n_layers)])
            what = "probability of the final prediction"
        else:
            values = self.probs(token)
            what = f"probability of {token_strings(self.model, [self.token_id(token)])[0]!r}"
        if ax is None:
            _, ax = plt.subplots(figsize=(max(4.0, 0.9 * self.n_tokens + 2), max(3.0, 0.45 * self.n_layers + 1.5)))
        image = ax.imshow(values.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", origin="lower")
        top = token_strings(self.model, self.top_ids[:, :, 0].reshape(-1).tolist())
        for i in range(self.n_layers):
            for j in range(self.n_tokens):
                ax.text(j, i, top[i * self.n_tokens + j], ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] > 0.5 else "black")
        ax.set_xticks(range(self.n_tokens), [f"{j}: {t!r}" for j, t in enumerate(self.tokens)], rotation=60, ha="right")
        ax.set_yticks(range(self.n_layers), self.layers)
        ax.set_xlabel("position (input token)")
        ax.set_ylabel("residual stream")
        ax.set_title("logit lens: top next token")
        ax.figure.colorbar(image, ax=ax, label=what)
        return ax


@torch.no_grad()
def logit_lens(
    model, prompt: str | torch.Tensor | Sequence[int], *, k: int = 10, progress: bool | None = None
) -> LogitLensResult:
    """The logit lens of `prompt` (text, or token ids [n] / [1, n]) from one forward: every residual stream row
    through the final norm (its own scale) and the unembedding; `k` top tokens kept per cell."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= model.cfg.d_vocab:
        raise ValueError(f"k must be an int from 1 to the vocabulary size {model.cfg.d_vocab}, got {k!r}.")
    tokens = prompt_tokens(model, prompt, too_long=TOO_LONG)
    n_layers = model.cfg.n_layers
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]
    wanted = set(names)
    bar = tqdm(total=len(names) + 1, desc="logit lens", delay=1.0, leave=False, disable=not progress_enabled(progress))
    with bar:
        logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in wanted)
        bar.update()
        normed, top_ids, top_probs = [], [], []
        for name in names:
            check_finite(cache[name][0], f"The residual stream at {name}", dims=("position",))
            row = model.ln_final(cache[name])  # [1, pos, d_model], normalised with its own scale
            probs = unembed(model, row)[0].float().softmax(-1)  # [pos, vocab], one row at a time
            values, ids = probs.topk(k, dim=-1)
            normed.append(row[0])
            top_ids.append(ids.cpu())
            top_probs.append(values.cpu())
            bar.update()
    ids = tokens[0].cpu()
    labels = [name.split(".")[-1].removeprefix("hook_") + name.split(".")[1] for name in names]
    return LogitLensResult(
        tokens=token_strings(model, ids.tolist()),
        token_ids=ids,
        layers=labels,
        top_ids=torch.stack(top_ids),
        top_probs=torch.stack(top_probs),
        final_ids=logits[0].argmax(-1).cpu(),
        model=model,
        normed=torch.stack(normed),
    )
