"""iw.teach's checks for the first tutorials: right on the engine's answer, wrong with a hint otherwise, and
"no answer yet" on the `...` placeholder."""

from __future__ import annotations

import pytest

import interpwidgets as iw
from interpwidgets import teach

HOOK = "blocks.2.hook_resid_post"


@pytest.fixture(scope="module")
def sae(teaching_model):
    return iw.sae.pretrained(teaching_model)[HOOK]


def test_promoted_token_agrees_with_logit_effects(teaching_model, sae):
    feature = 0
    effects = iw.sae.logit_effects(teaching_model, sae, feature, k=2)
    (first, _), (second, _) = effects.top
    assert teach.promoted_token(teaching_model, sae, feature, first)
    runner_up = teach.promoted_token(teaching_model, sae, feature, second)
    assert not runner_up and runner_up.hint
    if first != first.strip():
        assert "leading space" in teach.promoted_token(teaching_model, sae, feature, first.strip()).message
    assert not teach.promoted_token(teaching_model, sae, feature, 3)
    placeholder = teach.promoted_token(teaching_model, sae, feature, ...)
    assert not placeholder and "no answer yet" in placeholder.message
