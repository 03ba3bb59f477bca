"""The IOI tutorial's checks (iw.teach.ioi) agree with the patching engine and with attention read in the test.

Expected heads come from another route than the checks' hand computations: path patching (the engine's
stacked runs with hooks) thresholded at half the largest drop, and attention patterns on a repeated random
sequence of another length and seed. Nothing here depends on which heads a particular trained model uses.
"""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.teach.ioi import heads_above


@pytest.fixture(scope="module")
def model():
    return iw.load_model()


@pytest.fixture(scope="module")
def task(model):
    return iw.tasks.ioi(model, n=24, seed=3)


def _all_heads(model) -> set[tuple[int, int]]:
    return {(L, h) for L in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)}


@pytest.fixture(scope="module")
def movers(model, task) -> set[tuple[int, int]]:
    """Heads whose direct path to the logits matters most (path patching) and that look at IO more than at S."""
    drop = 1 - iw.patching.path_patch(model, task, senders="heads", receivers="logits", progress=False).values
    _, cache = model.run_with_cache(task.clean_tokens)
    io = (task.clean_tokens == task.answer_tokens[:, None]).int().argmax(1)
    s2 = task.clean_tokens.shape[1] - 1 - (task.clean_tokens == task.wrong_tokens[:, None]).int().flip(1).argmax(1)
    rows = torch.arange(len(io))
    looks_at_io = torch.stack([
        cache[f"blocks.{L}.attn.hook_pattern"][rows, :, -1, io].mean(0) > cache[f"blocks.{L}.attn.hook_pattern"][rows, :, -1, s2].mean(0)
        for L in range(model.cfg.n_layers)])
    found = heads_above(torch.where(looks_at_io, drop, torch.zeros_like(drop)), 0.5)
    assert found, "the teaching model should have at least one name mover"
    return found


def test_name_movers_accepts_the_path_patching_answer_and_rejects_others(model, task, movers):
    assert iw.teach.name_movers(model, task, sorted(movers))
    assert iw.teach.name_movers(model, task, [f"L{L}H{h}" for L, h in movers])
    wrong = iw.teach.name_movers(model, task, sorted(_all_heads(model) - movers))
    assert not wrong and wrong.hint and "missing" in wrong.message
    assert "no answer yet" in iw.teach.name_movers(model, task, ...).message


def test_s_inhibition_accepts_heads_found_by_path_patching_into_the_movers_queries(model, task, movers):
    receivers = [f"L{L}H{h}.q" for L, h in movers]
    drop = 1 - iw.patching.path_patch(model, task, senders="heads", receivers=receivers, progress=False).values
    expected = heads_above(torch.nan_to_num(drop, nan=0.0), 0.5)
    assert iw.teach.s_inhibition(model, task, movers, sorted(expected))
    wrong = iw.teach.s_inhibition(model, task, movers, sorted(_all_heads(model)))
    assert not wrong and "not S-inhibition heads" in wrong.message and wrong.hint
    assert "no answer yet" in iw.teach.s_inhibition(model, task, movers, ...).message


def _repeat_patterns(model, length: int = 9, seed: int = 5):
    generator = torch.Generator().manual_seed(seed)
    random = torch.randint(5, model.cfg.d_vocab, (12, length), generator=generator)
    tokens = torch.cat([torch.full((12, 1), model.tokenizer.bos_token_id), random, random], 1)
    _, cache = model.run_with_cache(tokens)
    return [cache[f"blocks.{L}.attn.hook_pattern"] for L in range(model.cfg.n_layers)], length


def test_induction_and_duplicate_token_checks_agree_with_patterns_on_another_sequence(model):
    patterns, n = _repeat_patterns(model)
    ind = torch.stack([torch.stack([p[:, :, q, q - n + 1] for q in range(n + 2, 2 * n + 1)]).mean((0, 1)) for p in patterns])
    dup = torch.stack([torch.stack([p[:, :, q, q - n] for q in range(n + 1, 2 * n + 1)]).mean((0, 1)) for p in patterns])
    assert iw.teach.induction_heads(model, sorted(heads_above(ind, 0.5)))
    assert iw.teach.duplicate_token_heads(model, sorted(heads_above(dup, 0.5)))
    assert not iw.teach.induction_heads(model, [])
    assert not iw.teach.duplicate_token_heads(model, sorted(_all_heads(model)))
    assert "no answer yet" in iw.teach.induction_heads(model, ...).message


def test_a_malformed_head_is_answered_with_the_expected_format(model):
    feedback = iw.teach.induction_heads(model, ["head three"])
    assert not feedback and "L3H1" in feedback.message
    assert "not a head of this model" in iw.teach.duplicate_token_heads(model, [(99, 0)]).message
