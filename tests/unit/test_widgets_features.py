"""TokenFeatures and the feature computations behind it: activations, ablation and steering of a feature,
logit effects, message validation, trait checks and the static preview."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interpwidgets.sae import SAEConfig, SAESet, build_sae
from interpwidgets.sae.editing import ablate_features, steer_feature
from interpwidgets.widgets.testing import decode_array
from interpwidgets.widgets.feature_data import dictionaries, feature_activations, logit_effects, prompt_tokens
from interpwidgets.widgets.testing import ask, decode_int32
from interpwidgets.widgets.token_features import TokenFeatures

PROMPT = "When Mary and John went to the store, John gave a drink to"
RESID0, RESID1 = "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"


def topk_sae(hook: str, d_sae: int, seed: int, k: int = 8):
    return build_sae(SAEConfig(d_in=128, d_sae=d_sae, architecture="topk", k=k, hook_name=hook), seed=seed)


@pytest.fixture(scope="module")
def saes():
    return SAESet.of([topk_sae(RESID0, 256, 0), topk_sae(RESID1, 64, 1)])


@pytest.fixture(scope="module")
def widget(random_model, saes):
    return TokenFeatures(random_model, saes, PROMPT)


@pytest.fixture(scope="module")
def acts(random_model, saes):
    return feature_activations(random_model, list(saes.values()), prompt_tokens(random_model, PROMPT))




def resid_after(model, tokens, hook: str, intervention=None) -> torch.Tensor:
    """The activation at `hook` as the next block reads it (after any edit made at `hook`)."""
    layer = int(hook.split(".")[1])
    with torch.no_grad():
        if intervention is None:
            _, cache = model.run_with_cache(tokens)
        else:
            _, cache = intervention.run_with_cache(tokens)
    return cache[f"blocks.{layer + 1}.hook_resid_pre"][0]


# ---- the computations
def test_activations_are_the_sae_encoding_of_the_hook(random_model, saes, acts):
    tokens = prompt_tokens(random_model, PROMPT)
    with torch.no_grad():
        _, cache = random_model.run_with_cache(tokens)
    for hook, sae in saes.items():
        torch.testing.assert_close(acts[hook], sae.encode(cache[hook]).float())
    assert acts[RESID0].shape == (1, tokens.shape[1], 256)


# the semantics the widget relies on (computed by iw.sae.features), checked by hand
def test_ablating_a_feature_subtracts_its_contribution(random_model, saes, acts):
    sae = saes[RESID0]
    tokens = prompt_tokens(random_model, PROMPT)
    position, feature = divmod(int(acts[RESID0][0].argmax()), 256)
    clean = resid_after(random_model, tokens, RESID0)
    ablated = resid_after(random_model, tokens, RESID0, ablate_features(random_model, sae, [feature]))
    expected = clean - acts[RESID0][0, :, feature, None] * sae.W_dec[feature].detach()
    torch.testing.assert_close(ablated, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ablated[position], clean[position])


def test_steering_a_feature_adds_its_scaled_decoder_row(random_model, saes):
    sae = saes[RESID1]
    tokens = prompt_tokens(random_model, PROMPT)
    clean = resid_after(random_model, tokens, RESID1)
    steered = resid_after(random_model, tokens, RESID1, steer_feature(random_model, sae, 5, 3.5))
    torch.testing.assert_close(steered, clean + 3.5 * sae.W_dec[5].detach(), atol=1e-5, rtol=1e-5)


def test_logit_effects_are_the_decoder_row_through_the_unembedding(random_model, saes):
    sae = saes[RESID0]
    effects = logit_effects(random_model, sae, 7, 5)
    direct = (sae.W_dec[7] @ random_model.W_U).detach()
    assert [v for _, v in effects["positive"]] == pytest.approx(direct.topk(5).values.tolist(), rel=1e-5)
    assert [v for _, v in effects["negative"]] == pytest.approx(direct.topk(5, largest=False).values.tolist(), rel=1e-5)
    assert effects["positive"][0][0] == random_model.tokenizer.decode([int(direct.argmax())])


def test_dictionaries_accepts_one_a_list_or_a_dict_and_rejects_the_rest(saes):
    sae = saes[RESID0]
    assert list(dictionaries(sae)) == [RESID0]
    assert list(dictionaries([sae, saes[RESID1]])) == [RESID0, RESID1]
    assert dictionaries(saes) == dict(saes)
    with pytest.raises(ValueError, match="two dictionaries read"):
        dictionaries([sae, sae])
    with pytest.raises(TypeError):
        dictionaries("blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match="no SAEs"):
        dictionaries([])


def test_prompt_checks(random_model):
    with pytest.raises(ValueError, match="empty"):
        prompt_tokens(random_model, "")
    with pytest.raises(ValueError, match="reads 1 to"):
        prompt_tokens(random_model, torch.zeros(random_model.cfg.n_ctx + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="integers"):
        prompt_tokens(random_model, torch.zeros(3))
    assert prompt_tokens(random_model, [0, 5, 6]).shape == (1, 3)


# ---- the widget's requests
def test_activations_request_sends_float16_values(widget, acts):
    ok, result = ask(widget, "activations", hook=RESID0, feature=11)
    assert ok
    values = decode_array(result["values"])
    assert result["values"]["dtype"] == "float16" and isinstance(result["values"]["data"], bytes)
    np.testing.assert_allclose(values, acts[RESID0][0, :, 11].numpy(), rtol=1e-3, atol=1e-3)
    assert result["max"] == pytest.approx(float(acts[RESID0][0, :, 11].max()), rel=1e-6)


def test_features_request_gives_each_tokens_strongest_features(widget, acts):
    ok, result = ask(widget, "features", hook=RESID1)
    assert ok
    indices, values = decode_int32(result["indices"]), decode_array(result["values"])
    expected = acts[RESID1][0].topk(5, dim=-1)
    assert indices.shape == (len(widget.tokens), 5)
    np.testing.assert_allclose(values, expected.values.numpy(), rtol=1e-3, atol=1e-3)
    top = acts[RESID1][0].gather(1, torch.as_tensor(indices, dtype=torch.long))
    np.testing.assert_allclose(top.numpy(), expected.values.numpy(), rtol=1e-6)


def test_token_request_lists_active_features_strongest_first(widget, acts):
    ok, result = ask(widget, "token", hook=RESID0, position=4)
    assert ok and result["position"] == 4
    indices, values = decode_int32(result["indices"]), decode_array(result["values"])
    row = acts[RESID0][0, 4]
    assert 0 < len(indices) <= 12 and (values > 0).all() and (np.diff(values) <= 0).all()
    np.testing.assert_allclose(values, row[torch.as_tensor(indices, dtype=torch.long)].numpy(), rtol=1e-3)
    assert int(indices[0]) == int(row.argmax())
    prompt_max = decode_array(result["prompt_max"])
    np.testing.assert_allclose(prompt_max, acts[RESID0][0][:, torch.as_tensor(indices, dtype=torch.long)].max(0).values,
                               rtol=1e-3)


@pytest.mark.parametrize("action", ["ablate", "steer"])
def test_intervene_request_reports_predictions_before_and_after(random_model, widget, saes, action):
    ok, result = ask(widget, "intervene", hook=RESID0, feature=3, action=action, alpha=25.0, position=6)
    assert ok, result
    tokens = prompt_tokens(random_model, PROMPT)
    sae = saes[RESID0]
    edit = ablate_features(random_model, sae, [3]) if action == "ablate" else steer_feature(random_model, sae, 3, 25.0)
    with torch.no_grad():
        before = torch.softmax(random_model(tokens)[0, 6], -1).topk(10)
        after = torch.softmax(edit.run(tokens)[0, 6], -1).topk(10)
    for side, expected in (("before", before), ("after", after)):
        np.testing.assert_allclose(decode_array(result[side]["probs"]), expected.values.numpy(), rtol=1e-3, atol=1e-4)
        assert result[side]["tokens"] == [random_model.tokenizer.decode([i]) for i in expected.indices.tolist()]
    if action == "steer":
        assert result["before"]["tokens"] != result["after"]["tokens"]
    assert result["activation"] == pytest.approx(float(widget.activations(RESID0)[6, 3]))


@pytest.mark.parametrize(
    ("method", "params", "complaint"),
    [
        ("activations", {"hook": "blocks.9.hook_resid_post", "feature": 0}, "hook must be one of"),
        ("activations", {"hook": RESID1, "feature": 64}, "feature must be between 0 and 63"),
        ("activations", {"hook": RESID0, "feature": True}, "feature must be an integer"),
        ("activations", {"hook": RESID0, "feature": "3"}, "feature must be an integer"),
        ("activations", {"hook": RESID0}, "feature must be an integer"),
        ("activations", {"hook": RESID0, "feature": 1, "extra": 1}, "unexpected parameters"),
        ("token", {"hook": RESID0, "position": -1}, "position must be between"),
        ("token", {"hook": RESID0, "position": 99}, "position must be between"),
        ("intervene", {"hook": RESID0, "feature": 1, "action": "delete", "alpha": 1, "position": 0}, "action must be one of"),
        ("intervene", {"hook": RESID0, "feature": 1, "action": "steer", "alpha": None, "position": 0}, "alpha must be a finite"),
        ("intervene", {"hook": RESID0, "feature": 1, "action": "steer", "alpha": 1e9, "position": 0}, "alpha must be between"),
        ("generate", {}, "unknown method"),
    ],
)
def test_bad_requests_are_answered_with_an_error(widget, method, params, complaint):
    ok, error = ask(widget, method, **params)
    assert not ok and complaint in error


def test_unreadable_messages_get_an_error_without_id(widget):
    reply, buffers = widget.handle_message(["not", "a", "request"])
    assert reply == {"kind": "iw:response", "id": None, "ok": False, "error": reply["error"]} and buffers == []


# ---- traits
def test_front_end_trait_updates_are_checked(random_model, saes, monkeypatch):
    widget = TokenFeatures(random_model, saes, PROMPT, hook=RESID0, feature=200)
    sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append(content))
    monkeypatch.setattr(widget, "send_state", lambda keys=None: sent.append({"resync": keys}))
    widget.set_state({"feature": 300})
    assert widget.feature == 200 and "feature must be between 0 and 255" in sent[0]["error"]
    widget.set_state({"tokens": ["x"]})
    assert widget.tokens[0] == "<|endoftext|>" and "may not change ['tokens']" in sent[2]["error"]
    widget.set_state({"alpha": math.inf})
    assert widget.alpha == 4.0
    widget.set_state({"hook": RESID1, "feature": 12})
    assert (widget.hook, widget.feature) == (RESID1, 12)


def test_switching_to_a_smaller_dictionary_resets_an_out_of_range_feature(random_model, saes):
    widget = TokenFeatures(random_model, saes, PROMPT, hook=RESID0, feature=200)
    widget.hook = RESID1
    assert widget.feature == 0 and widget.sae is saes[RESID1]


def test_constructor_checks(random_model, saes):
    with pytest.raises(Exception, match="hook must be one of"):
        TokenFeatures(random_model, saes, PROMPT, hook="blocks.3.hook_resid_post")
    with pytest.raises(Exception, match="feature must be between 0 and 63"):
        TokenFeatures(random_model, saes, PROMPT, hook=RESID1, feature=64)
    with pytest.raises(ValueError, match="top_k"):
        TokenFeatures(random_model, saes, PROMPT, top_k=0)


def test_static_preview_colours_tokens_and_escapes_them(random_model, saes):
    widget = TokenFeatures(random_model, saes, PROMPT)
    widget.set_trait("tokens", ["<script>alert(1)</script>", *widget.tokens[1:]])
    html = widget._repr_mimebundle_()[0]["text/html"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "background:rgb(" in html and f"activation of {widget.hook} #{widget.feature}" in html
    assert "application/vnd.jupyter.widget-view+json" in widget._repr_mimebundle_()[0]
