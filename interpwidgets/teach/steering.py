"""Checks for the steering tutorial (08_steering): find a feature, steer with it, find a spurious cue's features.

Each check computes its answer by its own route: the model's activations read from a cache and encoded by the
SAE here, a steering vector added by a forward hook written out here, cue correlations computed in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from interpwidgets.models.tokens import prompt_tokens
from interpwidgets.tasks.base import single_token_id
from interpwidgets.teach.feedback import Feedback, compare_number, compare_sets, not_answered, right, unanswered, wrong


def _encoded(model, sae, tokens: torch.Tensor) -> torch.Tensor:
    """`[batch, seq, d_sae]` feature activations of `sae` on `tokens [batch, seq]`, from a cache read here."""
    hook = sae.cfg.hook_name
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name == hook)
    act = cache[hook]
    if act.shape[-1] != sae.cfg.d_in:
        raise ValueError(f"{hook} has width {act.shape[-1]} but the SAE reads {sae.cfg.d_in}; use a residual, "
                         "attention-output or MLP-output SAE of this model.")
    return sae.encode(act.to(sae.W_enc.dtype)).float()


@torch.no_grad()
def strongest_feature(model, sae, prompt: str | torch.Tensor, answer: Any, position: int = -1) -> Feedback:
    """Right when `answer` is the feature of `sae` with the largest activation at `position` of `prompt`."""
    exercise = "strongest feature"
    hint = ("encode the prompt with iw.sae.feature_activations(model, sae, prompt), take the row of the token "
            "(.acts[position]) and its argmax.")
    if unanswered(answer):
        return not_answered(exercise, hint)
    try:
        given = int(answer)
    except (TypeError, ValueError):
        return wrong(exercise, f"the answer should be one feature index (an int), got {type(answer).__name__}.", hint)
    row = _encoded(model, sae, prompt_tokens(model, prompt))[0, position]  # [d_sae]
    best = int(row.argmax())
    if given == best:
        return right(exercise, f"feature {best} fires most there ({float(row[best]):.3g}).")
    if not 0 <= given < row.numel():
        return wrong(exercise, f"{given} is not a feature of this SAE (it has {row.numel()}).", hint)
    return wrong(exercise, f"feature {given} fires {float(row[given]):.3g} there; another fires more.", hint)


@torch.no_grad()
def steered_logit_diff(model, prompt: str | torch.Tensor, good: str | int, bad: str | int, sae, feature: int,
                       alpha: float) -> float:
    """The last position's logit(`good`) - logit(`bad`) with `alpha * W_dec[feature]` added to `sae`'s output hook
    at every position, by a forward hook written out here. good/bad: a token string (one token) or id."""
    vector = float(alpha) * sae.W_dec[int(feature)].detach()  # [d_out]

    def add(act: torch.Tensor, hook) -> torch.Tensor:
        if act.shape[-1] != vector.shape[0]:
            raise ValueError(f"{sae.cfg.output_hook} has width {act.shape[-1]}, the decoder {vector.shape[0]}; "
                             "steer with a residual, attention-output or MLP-output SAE.")
        return act + vector.to(act.device, act.dtype)

    logits = model.run_with_hooks(prompt_tokens(model, prompt), fwd_hooks=[(sae.cfg.output_hook, add)])[0, -1]
    return float(logits[_token_id(model, good)] - logits[_token_id(model, bad)])


def _token_id(model, token: str | int) -> int:
    return token if isinstance(token, int) else single_token_id(model.tokenizer, token)


def steering_effect(model, prompt: str | torch.Tensor, good: str | int, bad: str | int, sae, feature: int,
                    alpha: float, answer: Any) -> Feedback:
    """Right when `answer` is how much steering by `alpha * W_dec[feature]` changes the logit difference
    logit(good) - logit(bad) at the last position (steered minus clean)."""
    exercise = "steering effect"
    hint = ("compute the logit difference at the last position once as is and once inside "
            "`with iw.sae.steer_feature(model, sae, feature, alpha):`, and subtract (steered minus clean).")
    if unanswered(answer):
        return not_answered(exercise, hint)
    expected = (steered_logit_diff(model, prompt, good, bad, sae, feature, alpha)
                - steered_logit_diff(model, prompt, good, bad, sae, feature, 0.0))
    return compare_number(exercise, answer, expected, "the change in logit difference", hint, rtol=0.02, atol=1e-3)


@torch.no_grad()
def cue_correlations(model, sae, tokens: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
    """`[d_sae]` Pearson correlation over sentences between each feature's activation averaged over positions and
    the 0/1 `cues` `[n]`; 0 for a feature that is constant on `tokens [n, seq]`."""
    pooled = _encoded(model, sae, tokens.to(model.cfg.device)).mean(1).cpu()  # [n, d_sae]
    x = pooled - pooled.mean(0)
    y = cues.float() - cues.float().mean()
    denominator = x.norm(dim=0) * y.norm()
    return torch.where(denominator > 1e-8, (x * y[:, None]).sum(0) / denominator.clamp_min(1e-8), torch.zeros(()))


def cue_features(model, sae, data, answer: Any, k: int = 5) -> Feedback:
    """Right when `answer` holds the `k` features of `sae` whose position-averaged activation correlates most
    (in absolute value) with the spurious cue on `data`'s balanced test split, where cue and label are unrelated."""
    exercise = "the cue's features"
    hint = (f"for each test sentence average the SAE's activations over positions; correlate each feature with "
            f"data.test_cues (torch.corrcoef, or by hand); take the {k} largest |correlations|.")
    if unanswered(answer):
        return not_answered(exercise, hint)
    if not isinstance(answer, (Sequence, set, frozenset, torch.Tensor)) or isinstance(answer, str):
        return wrong(exercise, f"the answer should be {k} feature indices, got {type(answer).__name__}.", hint)
    given = [int(f) for f in (answer.tolist() if isinstance(answer, torch.Tensor) else answer)]
    corr = cue_correlations(model, sae, data.test_tokens, data.test_cues).abs()
    expected = corr.topk(k).indices.tolist()
    return compare_sets(exercise, given, expected, f"features most correlated with the cue (top {k})", hint)
