"""Looking at individual features: activations per token, top-activating examples, direct logit effects.
(Acting on them, ablation and steering, is `interpwidgets.sae.editing`.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from interpwidgets.sae.activations import CORPUS_SEED, token_batches, token_source
from interpwidgets.sae.base import SAE
from interpwidgets.sae.hooks import as_dictionary_input, check_fits, to_dictionary


class FeatureActivations(NamedTuple):
    """`acts [seq, d_sae]` of one prompt and its `str_tokens` (length seq)."""

    acts: torch.Tensor
    str_tokens: list[str]


@dataclass
class Example:
    """One top-activating occurrence: `activation` at `position` of token row `row`, with a window around it."""

    activation: float
    row: int
    position: int
    str_tokens: list[str]  # the window's tokens
    activations: list[float]  # the feature's activation on each window token
    focus: int  # index of the activating token within the window


def _check_feature(sae: SAE, feature: int) -> int:
    if not 0 <= int(feature) < sae.cfg.d_sae:
        raise IndexError(f"feature {feature} is out of range for an SAE with {sae.cfg.d_sae} latents.")
    return int(feature)


def _token_strings(model, ids, vocabulary: bool = False) -> list[str]:
    """Each of `ids [n]` as text (or, with `vocabulary`, as its vocabulary entry); "#id" without a tokenizer."""
    ids = torch.as_tensor(ids).reshape(-1).tolist()
    if getattr(model, "tokenizer", None) is None:
        return [f"#{i}" for i in ids]
    return model.tokenizer.convert_ids_to_tokens(ids) if vocabulary else model.to_str_tokens(torch.tensor(ids))


@torch.no_grad()
def _encode_tokens(model, sae: SAE, tokens: torch.Tensor) -> torch.Tensor:
    """Feature activations `[batch, seq, d_sae]` of `tokens [batch, seq]` (on the SAE's device, in its dtype)."""
    _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=[sae.cfg.hook_name])
    x = as_dictionary_input(cache[sae.cfg.hook_name], sae.cfg.d_in, sae.cfg.hook_name)
    return sae.encode(to_dictionary(sae, x))


def feature_activations(model, sae: SAE, prompt: str | torch.Tensor, prepend_bos: bool = True) -> FeatureActivations:
    """Every feature's activation on every token of `prompt` (a string or token ids [seq]): `(acts [seq, d_sae], str_tokens)`."""
    check_fits(model, sae)
    if isinstance(prompt, str) and getattr(model, "tokenizer", None) is None:
        raise ValueError("This model has no tokenizer (it reads token ids only): pass the prompt as token ids [seq].")
    tokens = model.to_tokens(prompt, prepend_bos=prepend_bos) if isinstance(prompt, str) else torch.as_tensor(prompt).reshape(1, -1)
    acts = _encode_tokens(model, sae, tokens)[0]
    return FeatureActivations(acts, _token_strings(model, tokens[0]))


@torch.no_grad()
def top_activating(
    model, sae: SAE, feature: int, tokens=None, *, k: int = 10, window: tuple[int, int] = (8, 3),
    n_batches: int = 16, batch_size: int = 32, context_size: int | None = None, progress: bool = False,
) -> list[Example]:
    """The `k` strongest activations of `feature` over `tokens` (a token tensor, a list of strings, or
    None for `n_batches` batches of the teaching corpus), strongest first, each with `window`
    (tokens before, tokens after) of context. Positions where the feature is 0 are never returned."""
    check_fits(model, sae)
    feature = _check_feature(sae, feature)
    rows, context = token_source(model, tokens, context_size)
    if rows is not None:
        n_batches = -(-len(rows) // batch_size)
    batches = token_batches(model, rows, batch_size, context, CORPUS_SEED + 2)
    best_vals = torch.empty(0)
    best_idx = torch.empty(0, 2, dtype=torch.long)
    kept_rows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for b in tqdm(range(n_batches), desc="top activations", disable=not progress):
        batch = next(batches)
        acts = _encode_tokens(model, sae, batch)[..., feature].float().cpu()  # [batch, seq]
        flat = acts.flatten()
        take = min(k, int((flat > 0).sum()))
        if take == 0:
            continue
        vals, where = flat.topk(take)
        idx = torch.stack([where // acts.shape[1] + b * batch_size, where % acts.shape[1]], dim=-1)
        for r in idx[:, 0].unique().tolist():
            kept_rows[r] = (batch[r - b * batch_size], acts[r - b * batch_size])
        best_vals, order = torch.cat([best_vals, vals]).sort(descending=True)
        best_idx = torch.cat([best_idx, idx])[order][:k]
        best_vals = best_vals[:k]
        kept_rows = {r: kept_rows[r] for r in best_idx[:, 0].tolist()}
    before, after = window
    examples = []
    for value, (row, pos) in zip(best_vals.tolist(), best_idx.tolist()):
        row_tokens, row_acts = kept_rows[row]
        lo, hi = max(0, pos - before), min(len(row_tokens), pos + after + 1)
        examples.append(Example(value, row, pos, _token_strings(model, row_tokens[lo:hi]), row_acts[lo:hi].tolist(), pos - lo))
    return examples


@torch.no_grad()
def logit_effects(model, sae: SAE, feature: int, k: int = 10) -> dict:
    """Direct effect of a feature's decoder direction on the logits: `W_dec[feature] @ W_U` (the
    convention of feature dashboards; the final LayerNorm is not applied).

    Returns {"values": [d_vocab], "top": [(token, value)] * k, "bottom": [(token, value)] * k}.
    """
    feature = _check_feature(sae, feature)
    W_U = model.W_U  # [d_model, d_vocab]
    if sae.cfg.d_out != W_U.shape[0]:
        raise ValueError(
            f"The SAE writes {sae.cfg.output_hook!r} with width {sae.cfg.d_out}, not the residual stream "
            f"(d_model {W_U.shape[0]}): its decoder directions have no direct path to the unembedding."
        )
    values = (sae.W_dec[feature].to(W_U.device, W_U.dtype) @ W_U).cpu()
    top, bottom = values.topk(k), values.topk(k, largest=False)
    return {
        "values": values,
        "top": list(zip(_token_strings(model, top.indices, vocabulary=True), top.values.tolist())),
        "bottom": list(zip(_token_strings(model, bottom.indices, vocabulary=True), bottom.values.tolist())),
    }
