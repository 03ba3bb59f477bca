"""The bundled teaching model meets its model-card targets on a held-out sample."""

from __future__ import annotations

from interpwidgets.zoo.evaluate import TARGETS, evaluate


# The model card's one shortfall: held-out IOI accuracy is 93.9% (n=512) against the 95% target.
SHORTFALLS = {"ioi_accuracy": 0.93}


def test_teaching_model_meets_model_card_on_held_out_sample(teaching_model):
    """On a held-out sample: IOI logit diff >= 3, induction >= 90%, brackets >= 95% (the targets), and IOI
    accuracy at least the 93% the model card reports (its target, 95%, is not met)."""
    scores = evaluate(teaching_model, n=256, seed=7)
    required = {**TARGETS, **SHORTFALLS}
    misses = {k: round(scores[k], 3) for k, floor in required.items() if scores[k] < floor}
    assert not misses, f"below the model card: {misses} (required {required})"


def test_teaching_model_prefers_the_indirect_object_on_the_quickstart_prompt(teaching_model):
    """The README's example prompt: ' Mary' is the top next token."""
    logits = teaching_model(teaching_model.to_tokens("When Mary and John went to the store, John gave a drink to"))
    assert teaching_model.to_string(logits[0, -1].argmax()) == " Mary"
