"""Checks for the features tutorial (02_features)."""

from __future__ import annotations

from typing import Any

import torch

from interpwidgets.teach.feedback import Feedback, not_answered, right, unanswered, wrong


@torch.no_grad()
def promoted_token(model, sae, feature: int, answer: Any) -> Feedback:
    """Right when `answer` (a token string) is the token whose logit `feature`'s decoder direction raises most
    directly: the argmax over the vocabulary of W_dec[feature] @ W_U, read here from the weights."""
    exercise = "promoted token"
    hint = "the direct effect of a feature on the logits is its decoder row times the unembedding: iw.sae.logit_effects."
    if unanswered(answer):
        return not_answered(exercise, hint)
    if not isinstance(answer, str):
        return wrong(exercise, f"the answer should be a token string such as ' Mary', got {type(answer).__name__}.", hint)
    if sae.cfg.d_out != model.cfg.d_model:
        raise ValueError(f"{sae.cfg.output_hook} is not the residual stream; pick a residual or MLP/attention-output SAE.")
    direct = sae.W_dec[int(feature)].float() @ model.W_U.float()  # [d_vocab]
    best = model.to_string(int(direct.argmax()))
    if answer == best:
        return right(exercise, f"{best!r} gains {float(direct.max()):.3g} per unit of the feature.")
    if answer.strip() == best.strip():
        return wrong(exercise, f"close: mind the leading space, the token is {len(best)} characters long.", hint)
    return wrong(exercise, f"{answer!r} is not the most promoted token.", hint)
