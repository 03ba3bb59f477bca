"""The bundled teaching model meets its model-card targets on a held-out sample."""

from __future__ import annotations

from interpwidgets.zoo.evaluate import TARGETS, evaluate


def test_teaching_model_meets_targets_on_held_out_sample(teaching_model):
    """IOI (held-out names and templates) logit diff >= 3 and accuracy >= 95%, induction >= 90%, brackets >= 95%."""
    scores = evaluate(teaching_model, n=256, seed=7)
    misses = {k: round(scores[k], 3) for k, target in TARGETS.items() if scores[k] < target}
    assert not misses, f"below target: {misses} (targets {TARGETS})"


def test_teaching_model_prefers_the_indirect_object_on_the_quickstart_prompt(teaching_model):
    """The README's example prompt: ' Mary' is the top next token."""
    logits = teaching_model(teaching_model.to_tokens("When Mary and John went to the store, John gave a drink to"))
    assert teaching_model.to_string(logits[0, -1].argmax()) == " Mary"
