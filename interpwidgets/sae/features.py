"""Looking at individual features: activations per token of one prompt and direct logit effects.
(Statistics over a corpus are `interpwidgets.sae.corpus_stats`; acting on features, ablation and steering,
is `interpwidgets.sae.editing`.)"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from interpwidgets.models.tokens import prompt_tokens, token_strings
from interpwidgets.sae.base import SAE
from interpwidgets.sae.inputs import as_dictionary_input, check_hook, encode_checked, to_dictionary
from interpwidgets.sae.sets import SAESet


def check_feature(feature: int, d_sae: int) -> int:
    """`feature` as an int; a ValueError unless it is an integer (Python, NumPy or a 0-d tensor) in [0, d_sae)."""
    try:
        index = None if isinstance(feature, bool) else operator.index(feature)
    except TypeError:
        index = None
    if index is None or not 0 <= index < d_sae:
        raise ValueError(f"feature must be an integer in [0, {d_sae - 1}], got {feature!r}.")
    return index


@dataclass(frozen=True)
class FeatureActivations:
    """Every dictionary's feature activations on one prompt, from one forward pass (float32, CPU).

    tokens: [seq] ids; str_tokens: their display strings; by_hook: {input hook: acts [seq, d_sae]};
    logits: [seq, d_vocab], the model's output on the prompt.
    """

    tokens: torch.Tensor
    str_tokens: list[str]
    by_hook: dict[str, torch.Tensor]
    logits: torch.Tensor

    def __getitem__(self, hook: str) -> torch.Tensor:
        """The activations `[seq, d_sae]` of the dictionary reading `hook`."""
        if hook not in self.by_hook:
            raise KeyError(f"No dictionary reads {hook!r}; these do: {list(self.by_hook)}.")
        return self.by_hook[hook]

    @property
    def acts(self) -> torch.Tensor:
        """The activations `[seq, d_sae]` of the only dictionary (with several, index by hook: `result[hook]`)."""
        if len(self.by_hook) != 1:
            raise ValueError(f"{len(self.by_hook)} dictionaries: pick one by hook, e.g. result[{next(iter(self.by_hook))!r}].")
        return next(iter(self.by_hook.values()))


@torch.no_grad()
def feature_activations(
    model: nn.Module, saes: SAE | Mapping[str, SAE] | Iterable[SAE], prompt: str | torch.Tensor | Sequence[int],
) -> FeatureActivations:
    """Every feature's activation on every token of `prompt` (text, or token ids [seq]) for one SAE, a list,
    a dict or an SAESet, from one forward pass."""
    dictionaries = SAESet.of(saes)
    if not dictionaries:
        raise ValueError("No SAEs given; pass at least one.")
    for hook in dictionaries:
        check_hook(model, hook)
    tokens = prompt_tokens(model, prompt)  # [1, seq]
    logits, cache = model.run_with_cache(tokens, names_filter=list(dictionaries))
    by_hook = {
        hook: encode_checked(sae, to_dictionary(sae, as_dictionary_input(cache[hook][0], sae.cfg.d_in, hook)), hook,
                             dims=("position",)).float().cpu()
        for hook, sae in dictionaries.items()
    }
    ids = tokens[0].cpu()
    return FeatureActivations(ids, token_strings(model, ids.tolist()), by_hook, logits[0].float().cpu())


def writes_residual(model: nn.Module, sae: SAE) -> bool:
    """Whether the dictionary's decoder directions have the residual stream's width, so reach the unembedding."""
    return sae.cfg.d_out == model.W_U.shape[0]


@dataclass(frozen=True)
class LogitEffects:
    """The direct effect of one feature's decoder direction on the logits, `W_dec[feature] @ W_U`.

    values: [d_vocab]; top / bottom: the k most promoted / most suppressed tokens as (token, value),
    strongest first.
    """

    values: torch.Tensor
    top: list[tuple[str, float]]
    bottom: list[tuple[str, float]]


@torch.no_grad()
def logit_effects(model: nn.Module, sae: SAE, feature: int, *, k: int = 10) -> LogitEffects:
    """Direct effect of a feature's decoder direction on the logits, `W_dec[feature] @ W_U` (the convention of
    feature dashboards; the final LayerNorm is not applied), with its `k` largest and smallest entries."""
    feature = check_feature(feature, sae.cfg.d_sae)
    if not writes_residual(model, sae):
        raise ValueError(
            f"The SAE writes {sae.cfg.output_hook!r} with width {sae.cfg.d_out}, not the residual stream "
            f"(d_model {model.W_U.shape[0]}): its decoder directions have no direct path to the unembedding."
        )
    W_U = model.W_U  # [d_model, d_vocab]
    values = (sae.W_dec[feature].to(W_U.device, W_U.dtype) @ W_U).float().cpu()
    k = min(k, values.numel())
    top, bottom = values.topk(k), values.topk(k, largest=False)
    return LogitEffects(
        values,
        list(zip(token_strings(model, top.indices.tolist()), top.values.tolist())),
        list(zip(token_strings(model, bottom.indices.tolist()), bottom.values.tolist())),
    )
