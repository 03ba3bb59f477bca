"""Checks for the patching tutorial (01_patching).

The expected answer is computed here by activation patching written out as forward hooks on the model, not through
`iw.patching`, which the tutorial uses.
"""

from __future__ import annotations

from typing import Any

import torch

from interpwidgets.teach.feedback import Feedback, not_answered, right, unanswered, wrong

NEAR_BEST = 0.9
"""Positions restoring at least this share of the best one's value are accepted too (a near tie)."""


@torch.no_grad()
def restored_by_position(model, task, layer: int) -> torch.Tensor:
    """`[seq]` share of the clean logit difference restored by patching `blocks.{layer}.hook_resid_pre` at one position
    from the clean run into the corrupted one: (patched - corrupt) / (clean - corrupt), mean over the prompts."""
    name = f"blocks.{layer}.hook_resid_pre"
    saved: dict[str, torch.Tensor] = {}

    def keep(activation, hook):
        saved["clean"] = activation.detach().clone()

    clean = task.metric(model.run_with_hooks(task.clean_tokens, fwd_hooks=[(name, keep)])).item()
    corrupt = task.metric(model(task.corrupt_tokens)).item()
    restored = []
    for position in range(task.clean_tokens.shape[1]):
        def patch(activation, hook, position=position):
            activation = activation.clone()
            activation[:, position] = saved["clean"][:, position]
            return activation

        patched = task.metric(model.run_with_hooks(task.corrupt_tokens, fwd_hooks=[(name, patch)])).item()
        restored.append((patched - corrupt) / (clean - corrupt))
    return torch.tensor(restored)


def strongest_position(model, task, layer: int, answer: Any) -> Feedback:
    """Right when `answer` is the position whose residual stream before `layer`, patched alone from the clean run into
    the corrupted one, restores the most of the clean logit difference (or one within `NEAR_BEST` of it)."""
    exercise = "strongest position"
    hint = (f"in the residual-stream heatmap, read the row of layer {layer}: the darkest cell's column is the position; "
            f"count from 0 at the BOS token, or take resid.values[{layer}].argmax().")
    if unanswered(answer):
        return not_answered(exercise, hint)
    try:
        position = int(answer)
    except (TypeError, ValueError):
        return wrong(exercise, f"the answer should be a position (an integer), got {type(answer).__name__}.", hint)
    restored = restored_by_position(model, task, layer)
    if not 0 <= position < len(restored):
        return wrong(exercise, f"position {position} is outside the prompt (positions 0 to {len(restored) - 1}).", hint)
    best = int(restored.argmax())
    token = model.to_str_tokens(task.clean_tokens[0])[position]
    if restored[position] >= NEAR_BEST * restored[best]:
        return right(exercise, f"position {position} ({token!r} in the first prompt) restores {restored[position]:.2f} "
                               "of the clean logit difference on its own.")
    return wrong(exercise, f"position {position} ({token!r}) restores {restored[position]:.2f}; another position restores "
                           f"more than {restored[position] / NEAR_BEST:.2f}.", hint)
