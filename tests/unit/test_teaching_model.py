"""The bundled teaching model keeps its model-card scores on a held-out sample."""

from __future__ import annotations

import interpwidgets as iw

# Floors at the model-card targets the bundled model meets. The targets themselves belong to the release
# script that writes the model card (scripts/release/evaluate_model.py); tests do not import release scripts.
TARGET_FLOORS = {"ioi_logit_diff": 3.0, "induction_accuracy": 0.90, "brackets_accuracy": 0.95}
# A regression floor at the measured value, not the target: held-out IOI accuracy measured 0.939 (n=512,
# the README's model card), short of its 0.95 target. The test guards the shipped weights against regressions;
# it does not claim the target is met.
REGRESSION_FLOORS = {"ioi_accuracy": 0.93}


def test_teaching_model_keeps_its_model_card_scores_on_a_held_out_sample(teaching_model):
    """On a held-out sample: IOI logit diff >= 3, induction >= 90%, brackets >= 95% (their model-card targets),
    and IOI accuracy >= 93%, a regression floor at the measured 93.9% (its 95% target is not met)."""
    scores = iw.tasks.evaluate(teaching_model, n=256, seed=7)
    required = {**TARGET_FLOORS, **REGRESSION_FLOORS}
    misses = {k: round(scores[k], 3) for k, floor in required.items() if scores[k] < floor}
    assert not misses, f"below the model card: {misses} (required {required})"
    assert set(scores) == set(required)


def test_teaching_model_prefers_the_indirect_object_on_the_quickstart_prompt(teaching_model):
    """The README's example prompt: ' Mary' is the top next token."""
    logits = teaching_model(teaching_model.to_tokens("When Mary and John went to the store, John gave a drink to"))
    assert teaching_model.to_string(logits[0, -1].argmax()) == " Mary"
