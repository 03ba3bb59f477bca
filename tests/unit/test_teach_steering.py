"""iw.teach's steering checks agree with the engine's routes (feature_activations, steer_feature, per-sentence
encoding), fail with a hint on a wrong answer, and answer "no answer yet" on the `...` placeholder."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets import teach

PROMPT = "When Mary and John went to the store, John gave a drink to"
HOOK = "blocks.2.hook_resid_post"


@pytest.fixture(scope="module")
def saes(teaching_model):
    return iw.sae.pretrained(teaching_model)


def _placeholder(feedback) -> bool:
    return not feedback and "no answer yet" in feedback.message and feedback.hint


def test_strongest_feature_is_the_argmax_of_the_engines_encoding(teaching_model, saes):
    row = iw.sae.feature_activations(teaching_model, saes[HOOK], PROMPT).acts[-1]
    assert teach.strongest_feature(teaching_model, saes[HOOK], PROMPT, int(row.argmax()))
    weaker = teach.strongest_feature(teaching_model, saes[HOOK], PROMPT, int(row.argmin()))
    assert not weaker and weaker.hint
    assert not teach.strongest_feature(teaching_model, saes[HOOK], PROMPT, "a feature")
    assert _placeholder(teach.strongest_feature(teaching_model, saes[HOOK], PROMPT, ...))


def test_steering_effect_matches_the_engines_steer_feature(teaching_model, saes):
    sae = saes[HOOK]
    feature = int(iw.sae.feature_activations(teaching_model, sae, PROMPT).acts[-1].argmax())
    tokens = teaching_model.to_tokens(PROMPT)
    good, bad = teaching_model.to_single_token(" Mary"), teaching_model.to_single_token(" John")

    def diff(logits):
        return float(logits[0, -1, good] - logits[0, -1, bad])

    with torch.no_grad():
        clean = diff(teaching_model(tokens))
        with iw.sae.steer_feature(teaching_model, sae, feature, alpha=4.0):
            steered = diff(teaching_model(tokens))
    assert abs(steered - clean) > 1e-2  # the steer does something, so a wrong sign below is wrong
    assert teach.steering_effect(teaching_model, PROMPT, " Mary", " John", sae, feature, 4.0, steered - clean)
    flipped = teach.steering_effect(teaching_model, PROMPT, " Mary", " John", sae, feature, 4.0, clean - steered)
    assert not flipped and flipped.hint
    assert _placeholder(teach.steering_effect(teaching_model, PROMPT, " Mary", " John", sae, feature, 4.0, ...))


def test_cue_features_are_the_top_correlations_computed_sentence_by_sentence(teaching_model, saes):
    data = iw.circuits.spurious_cue_dataset(teaching_model, n_train=2, n_test=12, seed=1)
    sae = saes[f"blocks.{teaching_model.cfg.n_layers - 1}.hook_resid_post"]
    pooled = torch.stack([iw.sae.feature_activations(teaching_model, sae, row).acts.mean(0) for row in data.test_tokens])
    cues = data.test_cues.float()
    corr = torch.corrcoef(torch.cat([pooled.T, cues[None]]))[-1, :-1]  # [d_sae]; NaN for a constant feature
    ranked = torch.nan_to_num(corr).abs().argsort(descending=True).tolist()
    assert teach.cue_features(teaching_model, sae, data, ranked[:5])
    assert teach.cue_features(teaching_model, sae, data, ranked[:3], k=3)
    swapped = teach.cue_features(teaching_model, sae, data, ranked[:4] + [ranked[-1]])
    assert not swapped and "1 missing" in swapped.message and swapped.hint
    assert not teach.cue_features(teaching_model, sae, data, 7)
    assert _placeholder(teach.cue_features(teaching_model, sae, data, ...))
