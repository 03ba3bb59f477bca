"""LogitLens: the state it sends is the lens result (top-k per cell, the final predictions' probabilities and ranks
checked against a LayerNorm + unembedding computed by hand from a cache), `follow` answers a token's probabilities
and ranks in every cell (the same hand computation), every malformed request gets an error reply and the widget
carries on, the code of a follow reproduces it, and the preview shows the labels, escaped."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import interpwidgets as iw
from interpwidgets.widgets import LogitLens
from interpwidgets.widgets.testing import ask, decode_array, decode_int32

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def result(teaching_model):
    return iw.lens.logit_lens(teaching_model, PROMPT, k=5)


@pytest.fixture
def lens(result):
    return LogitLens(result)


@pytest.fixture(scope="module")
def hand_logits(teaching_model) -> torch.Tensor:
    """[row, pos, vocab] logits of resid_pre0..resid_pre3, resid_post3 through a LayerNorm written here (each row
    normalised with its own mean and variance) and W_U, b_U."""
    model = teaching_model
    tokens = model.to_tokens(PROMPT)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        n = model.cfg.n_layers
        rows = [cache[f"blocks.{layer}.hook_resid_pre"][0] for layer in range(n)] + [cache[f"blocks.{n - 1}.hook_resid_post"][0]]
        x = torch.stack(rows).double()
        centred = x - x.mean(-1, keepdim=True)
        normed = centred / (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
        w, b = model.ln_final.weight.double(), model.ln_final.bias.double()
        return (normed * w + b) @ model.W_U.double() + model.b_U.double()


def hand_probs_ranks(hand_logits: torch.Tensor, token: int) -> tuple[np.ndarray, np.ndarray]:
    probs = hand_logits.softmax(-1)[..., token]
    ranks = (hand_logits > hand_logits[..., token : token + 1]).sum(-1)
    return probs.float().numpy(), ranks.numpy()


def test_the_hand_computation_reads_the_models_logits_at_the_last_row(teaching_model, hand_logits):
    """A check on the reference itself: its final row is the model's own output."""
    logits = teaching_model(teaching_model.to_tokens(PROMPT))[0]
    torch.testing.assert_close(hand_logits[-1].float(), logits.detach(), atol=2e-4, rtol=1e-4)


def test_state_sends_every_cells_top_k_as_indices_into_a_small_vocabulary(lens, result, hand_logits):
    assert lens.layers == ["resid_pre0", "resid_pre1", "resid_pre2", "resid_pre3", "resid_post3"]
    assert lens.row_layers == [0, 1, 2, 3, 3]
    assert lens.tokens == result.tokens and lens.k == 5 and lens.token is None
    ids = decode_int32(lens.vocab_ids)
    index = decode_int32(lens.top["index"])
    assert index.shape == (5, result.n_tokens, 5)
    np.testing.assert_array_equal(ids[index], hand_logits.topk(5, dim=-1).indices.numpy())
    np.testing.assert_allclose(decode_array(lens.top["probs"]), hand_logits.softmax(-1).topk(5, dim=-1).values.float().numpy(),
                               rtol=2e-3, atol=1e-4)
    assert [lens.vocab[i] for i in index[2, 3]] == [token for token, _ in result.top(2, 3, k=5)]
    assert all(isinstance(wire["data"], bytes) for wire in (lens.vocab_ids, lens.top["index"], lens.top["probs"]))


def test_the_default_colouring_is_each_columns_final_prediction(lens, teaching_model, hand_logits):
    final = hand_logits[-1].argmax(-1)  # [pos] the model's own predictions
    ids = decode_int32(lens.vocab_ids)
    np.testing.assert_array_equal(ids[decode_int32(lens.final["index"])], final.numpy())
    expected = hand_logits.softmax(-1).gather(2, final[None, :, None].expand(5, -1, 1))[..., 0].float().numpy()
    np.testing.assert_allclose(decode_array(lens.final["probs"]), expected, rtol=2e-3, atol=1e-4)
    chosen = hand_logits.gather(2, final[None, :, None].expand(5, -1, 1))
    np.testing.assert_array_equal(decode_int32(lens.final["ranks"]), (hand_logits > chosen).sum(-1).numpy())
    assert (decode_int32(lens.final["ranks"])[-1] == 0).all()


@pytest.mark.parametrize("token", [" Mary", "mary-id"])
def test_follow_answers_the_tokens_probabilities_and_ranks_in_every_cell(lens, teaching_model, hand_logits, token):
    mary = teaching_model.tokenizer.encode(" Mary", add_special_tokens=False)
    assert len(mary) == 1
    ok, answer = ask(lens, "follow", token=mary[0] if token == "mary-id" else token)
    assert ok, answer
    assert answer["token"] == " Mary" and answer["id"] == mary[0]
    probs, ranks = hand_probs_ranks(hand_logits, mary[0])
    assert answer["probs"]["dtype"] == "float16" and answer["ranks"]["dtype"] == "int32"
    np.testing.assert_allclose(decode_array(answer["probs"]), probs, rtol=2e-3, atol=1e-4)
    np.testing.assert_array_equal(decode_int32(answer["ranks"]), ranks)


def test_the_code_of_a_follow_reproduces_its_numbers(lens, result):
    ok, answer = ask(lens, "follow", token=" John")
    assert ok, answer
    assert answer["code"].splitlines()[-1] == "result.probs(' John')"
    assert lens.history[-1].action == "follow ' John'"
    namespace = {"result": result}
    np.testing.assert_allclose(decode_array(answer["probs"]), eval(answer["code"].splitlines()[-1], namespace).numpy(),
                               rtol=2e-3, atol=1e-4)
    by_id = result.token_id(" Mary")
    ok, answer = ask(lens, "follow", token=by_id)
    assert ok and answer["code"].splitlines()[-1] == f"result.probs({by_id})  # ' Mary'"  # an id says which token it is
    assert lens.code().count("result.probs(") == 2


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"token": " Mary went home"}, "is not one token"),
        ({"token": ""}, "type a token to follow"),
        ({"token": 3.5}, "token must be the text of one token or a token id"),
        ({"token": True}, "token must be the text of one token or a token id"),
        ({"token": None}, "token must be the text of one token or a token id"),
        ({"token": ["x"]}, "token must be the text of one token or a token id"),
        ({"token": -1}, "out of range"),
        ({"token": 10**9}, "out of range"),
        ({"token": " Mary", "layer": 2}, "unexpected parameters ['layer']"),
    ],
)
def test_malformed_follow_requests_get_error_replies_and_the_widget_carries_on(lens, params, match):
    reply, buffers = lens.handle_message({"kind": "iw:request", "id": "f-1", "method": "follow", "params": params})
    assert reply["ok"] is False and match in reply["error"] and buffers == []
    assert lens.history == [] and lens.last_error is None
    ok, answer = ask(lens, "follow", token=" Mary")
    assert ok and answer["token"] == " Mary"


def test_unknown_methods_and_front_end_writes_are_refused(lens, monkeypatch):
    ok, error = ask(lens, "ablate", component="L0H0")
    assert not ok and "unknown method 'ablate'" in error
    errors = []
    monkeypatch.setattr(lens, "send_error", errors.append)
    monkeypatch.setattr(lens, "send_state", lambda keys: None)
    lens.set_state({"token": 3})
    assert lens.token is None and "may not change ['token']" in errors[-1]


def test_a_model_and_a_prompt_give_the_same_view_and_token_picks_the_first_colouring(teaching_model, result, hand_logits):
    lens = LogitLens(teaching_model, PROMPT, token=" Mary", k=5)
    assert lens.layers == result.layers and lens.tokens == result.tokens
    np.testing.assert_array_equal(decode_int32(lens.top["index"]).shape, (5, result.n_tokens, 5))
    assert lens.token == result.token_id(" Mary")
    np.testing.assert_allclose(lens.followed["probs"], hand_probs_ranks(hand_logits, lens.token)[0], rtol=1e-4, atol=1e-6)
    assert "probability of &#x27; Mary&#x27;" in lens._repr_mimebundle_()[0]["text/html"]
    with pytest.raises(ValueError, match="is not one token"):
        LogitLens(result, token=" Mary went home")
    with pytest.raises(ValueError, match="comes with its prompt"):
        LogitLens(result, PROMPT)
    with pytest.raises(ValueError, match="needs an iw.lens.logit_lens result"):
        LogitLens(teaching_model)


def test_static_preview_shows_the_grid_labels_and_legend_escaped(result):
    hostile = dataclasses.replace(result, tokens=["<b>bos</b>", *result.tokens[1:]])
    html = LogitLens(hostile)._repr_mimebundle_()[0]["text/html"]
    assert "<svg" in html and "data:image/png;base64," in html and "linear-gradient" in html
    assert "probability of the model&#x27;s final prediction" in html
    for label in result.layers:
        assert f">{label}</text>" in html
    assert "&lt;b&gt;bos&lt;/b&gt;" in html and "<b>bos" not in html
    assert "store" in html  # column labels are the tokens
