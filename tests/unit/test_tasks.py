"""Tasks: shapes, the corruptions the papers define, metric values, and clear errors for bad input."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.data import vocab
from interpwidgets.tasks.brackets import CLOSER, open_stack


@pytest.mark.parametrize("make", [iw.tasks.ioi, iw.tasks.induction, iw.tasks.brackets])
def test_task_batches_are_same_length_pairs_with_bos(random_model, make):
    """Every task gives [n, seq] clean/corrupt tensors of equal shape, BOS first, one answer and wrong token each."""
    task = make(random_model, n=16, seed=3)
    assert task.clean_tokens.shape == task.corrupt_tokens.shape and task.clean_tokens.shape[0] == 16
    assert (task.clean_tokens[:, 0] == random_model.tokenizer.bos_token_id).all()
    assert task.answer_tokens.shape == task.wrong_tokens.shape == (16,)
    assert (task.answer_tokens != task.wrong_tokens).all()


def test_tasks_are_deterministic_in_seed(random_model):
    """The same seed gives the same prompts; another seed gives others."""
    a, b, c = (iw.tasks.ioi(random_model, n=8, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.clean_tokens, b.clean_tokens) and not torch.equal(a.clean_tokens, c.clean_tokens)


def test_ioi_abc_corruption_removes_the_repeated_name(random_model):
    """IOI clean prompts repeat S and end before IO; ABC corruption uses three fresh, distinct names, no repeat."""
    task = iw.tasks.ioi(random_model, n=32, seed=0, split="held_out")
    tok = random_model.tokenizer
    # a name opening the prompt has no leading space: count both token forms, compare by word
    word = {tok.convert_tokens_to_ids(form + n): n for n in vocab.HELD_OUT_NAMES for form in ("Ġ", "")}
    for clean, corrupt, io, s in zip(task.clean_tokens, task.corrupt_tokens, task.answer_tokens, task.wrong_tokens):
        clean_names = [word[t] for t in clean.tolist() if t in word]
        corrupt_names = [word[t] for t in corrupt.tolist() if t in word]
        assert sorted(clean_names) == sorted([word[io.item()], word[s.item()], word[s.item()]])
        assert len(corrupt_names) == 3 and len(set(corrupt_names)) == 3
        assert not set(corrupt_names) & {word[io.item()], word[s.item()]}
        differs = (clean != corrupt).nonzero().flatten().tolist()
        assert len(differs) == 3  # only the three name positions change


def test_induction_prompt_repeats_and_corruption_changes_the_first_half(random_model):
    """Clean = r + r[:-1] with answer r[-1]; corrupt has another first half whose copy target is the wrong token."""
    task = iw.tasks.induction(random_model, n=8, seed=0, length=10)
    for clean, corrupt, answer, wrong in zip(task.clean_tokens, task.corrupt_tokens, task.answer_tokens, task.wrong_tokens):
        first, second = clean[1:11], clean[11:]
        assert torch.equal(first[:-1], second) and first[-1] == answer
        assert torch.equal(corrupt[11:], second) and corrupt[10] == wrong and corrupt[9] == clean[9]
        assert (corrupt[1:9] != clean[1:9]).any()


def test_brackets_answer_closes_innermost_open_bracket(random_model):
    """The answer closes the innermost open bracket; the corrupt prompt changes exactly that opener."""
    task = iw.tasks.brackets(random_model, n=16, seed=0, length=10)
    tok = random_model.tokenizer
    for clean, corrupt, answer, wrong in zip(task.clean_tokens, task.corrupt_tokens, task.answer_tokens, task.wrong_tokens):
        seq = [tok.convert_ids_to_tokens(t)[1:] for t in clean[1:].tolist()]
        inner = open_stack(seq)[-1]
        assert tok.convert_ids_to_tokens(answer.item())[1:] == CLOSER[seq[inner]]
        changed = (clean != corrupt).nonzero().flatten().tolist()
        assert changed == [inner + 1]
        assert tok.convert_ids_to_tokens(wrong.item())[1:] == CLOSER[tok.convert_ids_to_tokens(corrupt[inner + 1].item())[1:]]


def test_metric_is_mean_logit_difference_at_last_position(random_model):
    """metric() equals logit[answer] - logit[wrong] at the last position, averaged; reduce=False keeps prompts."""
    task = iw.tasks.ioi(random_model, n=6, seed=0)
    logits = torch.randn(6, task.clean_tokens.shape[1], random_model.cfg.d_vocab)
    expected = logits[torch.arange(6), -1, task.answer_tokens] - logits[torch.arange(6), -1, task.wrong_tokens]
    torch.testing.assert_close(task.metric(logits, reduce=False), expected)
    torch.testing.assert_close(task.metric(logits), expected.mean())


def test_subset_keeps_rows_aligned(random_model):
    task = iw.tasks.ioi(random_model, n=8, seed=0)
    sub = task.subset([5, 1])
    assert torch.equal(sub.clean_tokens, task.clean_tokens[[5, 1]]) and sub.clean_prompts == [task.clean_prompts[5], task.clean_prompts[1]]


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_non_positive_n_is_a_clear_error(random_model, n):
    with pytest.raises(ValueError, match="n must be a positive number"):
        iw.tasks.ioi(random_model, n=n)


def test_prompts_longer_than_context_are_a_clear_error(random_model):
    with pytest.raises(ValueError, match="longer than the model's context"):
        iw.tasks.induction(random_model, n=2, length=random_model.cfg.n_ctx)


def test_tokenizer_without_the_task_tokens_is_a_clear_error(random_model):
    """A model whose tokenizer lacks single-token names gets an error naming the problem."""

    class Stub:  # a model-like object whose tokenizer splits every name
        cfg = random_model.cfg

        class tokenizer:  # noqa: N801
            bos_token_id, unk_token_id = 0, 1

            @staticmethod
            def encode(text, add_special_tokens=False):
                return [5, 6]

    with pytest.raises(ValueError, match="single tokens"):
        iw.tasks.ioi(Stub(), n=4)


def test_mismatched_clean_and_corrupt_shapes_are_rejected():
    with pytest.raises(ValueError, match="same \\[batch, seq\\] shape"):
        iw.tasks.Task("x", torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 6, dtype=torch.long),
                      torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long))
