"""iw.teach.strongest_position (01_patching): its hand-written patching hooks give the same shares as
iw.patching.activation_patch on the teaching model (tests/families/ has the family matrix), it accepts the engine's best position,
refuses a weak one with a hint, and answers a placeholder, a non-integer and an out-of-range position without raising."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets import teach
from interpwidgets.teach.patching import restored_by_position


@pytest.fixture(scope="module")
def task(teaching_model):
    return iw.tasks.ioi(teaching_model, n=8, seed=0)


def engine_row(model, task, layer):
    return iw.patching.activation_patch(model, task, site="resid_pre", by="position", progress=False).values[layer]


@pytest.mark.parametrize("layer", [0, 2])
def test_the_checks_hooks_match_the_engines_activation_patching(teaching_model, task, layer):
    torch.testing.assert_close(restored_by_position(teaching_model, task, layer), engine_row(teaching_model, task, layer).float(),
                               atol=1e-4, rtol=0)


def test_right_on_the_engines_best_position_wrong_with_a_hint_on_the_weakest(teaching_model, task):
    row = engine_row(teaching_model, task, 0)
    best = teach.strongest_position(teaching_model, task, 0, int(row.argmax()))
    assert best and "restores" in best.message
    weakest = teach.strongest_position(teaching_model, task, 0, int(row.argmin()))
    assert not weakest and "another position restores more" in weakest.message and weakest.hint


def test_placeholder_non_integer_and_out_of_range_answers_do_not_raise(teaching_model, task):
    assert "no answer yet" in teach.strongest_position(teaching_model, task, 0, ...).message
    assert "should be a position" in teach.strongest_position(teaching_model, task, 0, "S1").message
    outside = teach.strongest_position(teaching_model, task, 0, 99)
    assert not outside and "outside the prompt" in outside.message
