"""Checks for the SAE training tutorial (07_train_an_sae): explained variance, L0 and dead fraction by hand.

Each check takes the dictionary and the activations `[..., d_in]` the student used and computes its answer here,
in float64, from the weights (pre-activations `x W_enc + b_enc`, the architecture's activation, `f W_dec + b_dec`),
not through the dictionary's forward pass.
"""

from __future__ import annotations

from typing import Any

import torch

from interpwidgets.teach.feedback import Feedback, compare_number, not_answered, unanswered


def _rows(sae, activations: torch.Tensor) -> torch.Tensor:
    """`[n, d_in]` float64 rows of `activations [..., d_in]`, checked against the dictionary's width."""
    if not isinstance(activations, torch.Tensor):
        raise TypeError(f"activations must be a tensor [..., {sae.cfg.d_in}], got {type(activations).__name__}; "
                        "pass the activations you computed your answer from.")
    if activations.shape[-1] != sae.cfg.d_in:
        raise ValueError(f"activations have width {activations.shape[-1]} but the SAE reads {sae.cfg.d_in}; "
                         f"pass activations of its hook {sae.cfg.hook_name or '(the training hook)'}.")
    return activations.detach().reshape(-1, sae.cfg.d_in).double().to(sae.W_enc.device)


@torch.no_grad()
def _features(sae, x: torch.Tensor) -> torch.Tensor:
    """`[n, d_sae]` feature activations of `x [n, d_in]` (float64), from the weights."""
    w_enc, b_enc, b_dec = sae.W_enc.double(), sae.b_enc.double(), sae.b_dec.double()
    pre = (x - b_dec if sae.cfg.apply_b_dec_to_input else x) @ w_enc + b_enc
    return sae.activation(pre.to(sae.W_enc.dtype)).double()


@torch.no_grad()
def explained_variance(sae, activations: torch.Tensor, answer: Any) -> Feedback:
    """Right when `answer` is 1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the rows of `activations`."""
    exercise = "explained variance"
    hint = ("reconstruct with x_hat = sae(x); divide the summed squared error by the summed squared distance "
            "of each row from the mean row, and subtract from 1.")
    if unanswered(answer):
        return not_answered(exercise, hint)
    if sae.cfg.is_transcoder:
        raise ValueError("This check is for an SAE (it reconstructs its own input); a transcoder predicts another hook.")
    x = _rows(sae, activations)
    x_hat = _features(sae, x) @ sae.W_dec.double() + sae.b_dec.double()
    expected = 1 - (x - x_hat).pow(2).sum().item() / max((x - x.mean(0)).pow(2).sum().item(), 1e-12)
    return compare_number(exercise, answer, expected, "explained variance", hint, rtol=0.01, atol=1e-3)


@torch.no_grad()
def mean_l0(sae, activations: torch.Tensor, answer: Any) -> Feedback:
    """Right when `answer` is the mean number of non-zero features per row of `activations`."""
    exercise = "L0"
    hint = "encode with f = sae.encode(x), count the non-zero entries of each row ((f != 0).sum(-1)) and average."
    if unanswered(answer):
        return not_answered(exercise, hint)
    expected = (_features(sae, _rows(sae, activations)) != 0).sum(-1).double().mean().item()
    return compare_number(exercise, answer, expected, "mean L0", hint, rtol=0.01, atol=0.05)


@torch.no_grad()
def dead_fraction(sae, activations: torch.Tensor, answer: Any) -> Feedback:
    """Right when `answer` is the fraction of the dictionary's features that are zero on every row of `activations`."""
    exercise = "dead fraction"
    hint = ("encode with f = sae.encode(x); a feature is dead here when it is zero on every row "
            "((f != 0).any(0) is False); give the fraction of all d_sae features, between 0 and 1.")
    if unanswered(answer):
        return not_answered(exercise, hint)
    fired = (_features(sae, _rows(sae, activations)) != 0).any(0)
    expected = 1 - fired.double().mean().item()
    return compare_number(exercise, answer, expected, "dead fraction", hint, rtol=0.0, atol=0.5 / sae.cfg.d_sae)
