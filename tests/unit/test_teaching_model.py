"""The bundled teaching model keeps its model-card scores on a held-out sample."""

from __future__ import annotations

import interpwidgets as iw

# Floors at the model-card targets, all of which the bundled model meets (README model card, n=512, three seeds). The
# targets themselves belong to the release script that writes the model card (scripts/release/evaluate_model.py);
# tests do not import release scripts.
TARGET_FLOORS = {"ioi_logit_diff": 3.0, "ioi_accuracy": 0.95, "induction_accuracy": 0.90,
                 "induction_word_accuracy": 0.90, "induction_long_accuracy": 0.90, "brackets_accuracy": 0.95}


def test_teaching_model_keeps_its_model_card_scores_on_a_held_out_sample(teaching_model):
    """On a held-out sample (seed 7, none of the model card's): IOI accuracy >= 95% and logit diff >= 3, induction
    >= 90% on random tokens of the whole vocabulary, on words and on sequences filling the context, brackets >= 95%:
    the model-card targets."""
    scores = iw.tasks.evaluate(teaching_model, n=256, seed=7)
    misses = {k: round(scores[k], 3) for k, floor in TARGET_FLOORS.items() if scores[k] < floor}
    assert not misses, f"below the model card: {misses} (required {TARGET_FLOORS})"
    assert set(scores) == set(TARGET_FLOORS)


def test_no_text_becomes_unk_in_the_teaching_model(teaching_model):
    """The issue's example: every character of a sentence of unknown words survives as a token of its own."""
    tokens = teaching_model.to_str_tokens("Quantum chromodynamics xyzzy")
    assert "<unk>" not in tokens and "".join(tokens[1:]) == "Quantum chromodynamics xyzzy"


def test_teaching_model_prefers_the_indirect_object_on_the_quickstart_prompt(teaching_model):
    """The README's example prompt: ' Mary' is the top next token."""
    logits = teaching_model(teaching_model.to_tokens("When Mary and John went to the store, John gave a drink to"))
    assert teaching_model.to_string(logits[0, -1].argmax()) == " Mary"
