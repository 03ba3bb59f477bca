"""TokenFeatures: its requests against a hand-computed forward pass (activations, strongest features, predictions
before and after ablating or steering a feature), the verbs reading the trait state, message validation, trait
checks, the traits the front end reads, and the static preview."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interpwidgets.sae import FeatureLabels, SAEConfig, SAESet, build_sae, feature_activations
from interpwidgets.widgets.testing import ask, decode_array, decode_int32
from interpwidgets.widgets.token_features import TokenFeatures

PROMPT = "When Mary and John went to the store, John gave a drink to"
RESID0, RESID1 = "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"


def topk_sae(hook: str, d_sae: int, seed: int, k: int = 8):
    return build_sae(SAEConfig(d_in=128, d_sae=d_sae, architecture="topk", k=k, hook_name=hook), seed=seed)


@pytest.fixture(scope="module")
def saes():
    return SAESet.of([topk_sae(RESID0, 256, 0), topk_sae(RESID1, 64, 1)])


@pytest.fixture(scope="module")
def tokens(random_model):
    return random_model.to_tokens(PROMPT)


@pytest.fixture(scope="module")
def acts(random_model, saes, tokens):
    """By hand: {hook: [n, d_sae]} encodings of the hook's activations."""
    with torch.no_grad():
        _, cache = random_model.run_with_cache(tokens)
        return {hook: sae.encode(cache[hook][0]).float() for hook, sae in saes.items()}


@pytest.fixture
def widget(random_model, saes):
    return TokenFeatures(random_model, saes, PROMPT)


def next_token_top(model, tokens, position: int, hooks=(), k: int = 10):
    """The top-k next-token probabilities at `position` of a forward with `hooks`, by hand."""
    with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
        return torch.softmax(model(tokens)[0, position], -1).topk(k)


# ---- the widget's requests
def test_activations_request_sends_the_chosen_features_values_as_float16(widget, acts):
    widget.hook, widget.feature = RESID0, 11
    ok, result = ask(widget, "activations")
    assert ok and (result["hook"], result["feature"]) == (RESID0, 11)
    assert result["values"]["dtype"] == "float16" and isinstance(result["values"]["data"], bytes)
    np.testing.assert_allclose(decode_array(result["values"]), acts[RESID0][:, 11].numpy(), rtol=1e-3, atol=1e-3)
    assert result["max"] == pytest.approx(float(acts[RESID0][:, 11].max().clamp_min(0)), rel=1e-6)


def test_features_request_gives_each_tokens_strongest_features(widget, acts):
    widget.hook = RESID1
    ok, result = ask(widget, "features")
    assert ok and result["hook"] == RESID1
    indices, values = decode_int32(result["indices"]), decode_array(result["values"])
    expected = acts[RESID1].topk(5, dim=-1)
    assert indices.shape == (len(widget.tokens), 5)
    np.testing.assert_allclose(values, expected.values.numpy(), rtol=1e-3, atol=1e-3)
    top = acts[RESID1].gather(1, torch.as_tensor(indices, dtype=torch.long))
    np.testing.assert_allclose(top.numpy(), expected.values.numpy(), rtol=1e-6)


def test_token_request_lists_active_features_strongest_first(widget, acts):
    widget.hook = RESID0
    ok, result = ask(widget, "token", position=4)
    assert ok and (result["hook"], result["position"]) == (RESID0, 4)
    indices, values = decode_int32(result["indices"]), decode_array(result["values"])
    row = acts[RESID0][4]
    assert 0 < len(indices) <= 12 and (values > 0).all() and (np.diff(values) <= 0).all()
    np.testing.assert_allclose(values, row[torch.as_tensor(indices, dtype=torch.long)].numpy(), rtol=1e-3)
    assert int(indices[0]) == int(row.argmax())
    np.testing.assert_allclose(decode_array(result["prompt_max"]),
                               acts[RESID0][:, torch.as_tensor(indices, dtype=torch.long)].max(0).values, rtol=1e-3)


@pytest.mark.parametrize("action", ["ablate", "steer"])
def test_intervene_request_reports_predictions_before_and_after(random_model, widget, saes, tokens, acts, action):
    """The predictions match a forward whose hook removes f * W_dec[f] (ablate) or adds alpha * W_dec[f] (steer)."""
    sae = saes[RESID0]
    widget.hook, widget.feature, widget.action, widget.alpha = RESID0, 3, action, 25.0
    ok, result = ask(widget, "intervene", position=6)
    assert ok, result
    change = acts[RESID0][:, 3, None] * -sae.W_dec[3].detach() if action == "ablate" else 25.0 * sae.W_dec[3].detach()
    before = next_token_top(random_model, tokens, 6)
    after = next_token_top(random_model, tokens, 6, [(RESID0, lambda x, hook: x + change)])
    for side, expected in (("before", before), ("after", after)):
        np.testing.assert_allclose(decode_array(result[side]["probs"]), expected.values.numpy(), rtol=1e-3, atol=1e-4)
        assert result[side]["tokens"] == [random_model.tokenizer.decode([i]) for i in expected.indices.tolist()]
    assert (result["action"], result["alpha"]) == (action, 25.0)
    assert result["description"] == ("ablate resid_post0/3" if action == "ablate" else "steer resid_post0/3 by 25")
    assert result["activation"] == pytest.approx(float(acts[RESID0][6, 3]), rel=1e-5)


def test_intervene_reads_alpha_from_the_trait_only(random_model, widget, saes, tokens):
    """alpha has one source of truth: the validated trait. A request that carries it is refused."""
    widget.hook, widget.feature, widget.action, widget.alpha = RESID1, 5, "steer", -12.0
    ok, result = ask(widget, "intervene", position=6)
    assert ok and result["alpha"] == -12.0
    vector = -12.0 * saes[RESID1].W_dec[5].detach()
    expected = next_token_top(random_model, tokens, 6, [(RESID1, lambda x, hook: x + vector)])
    np.testing.assert_allclose(decode_array(result["after"]["probs"]), expected.values.numpy(), rtol=1e-3, atol=1e-4)
    ok, error = ask(widget, "intervene", position=6, alpha=3.0)
    assert not ok and "unexpected parameters ['alpha']" in error


@pytest.mark.parametrize(
    ("method", "params", "complaint"),
    [
        ("activations", {"hook": RESID0, "feature": 1}, "unexpected parameters"),
        ("features", {"hook": RESID0}, "unexpected parameters"),
        ("token", {"position": -1}, "position must be between"),
        ("token", {"position": 99}, "position must be between"),
        ("token", {}, "position must be an integer"),
        ("intervene", {"position": 1.5}, "position must be an integer"),
        ("intervene", {"position": 0, "action": "steer"}, "unexpected parameters"),
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
    assert widget.feature == 200 and "feature must be an integer in [0, 255], got 300" in sent[0]["error"]
    widget.set_state({"tokens": ["x"]})
    assert widget.tokens[0] == "<|endoftext|>" and "may not change ['tokens']" in sent[2]["error"]
    for alpha in (math.inf, math.nan, 2e4):
        widget.set_state({"alpha": alpha})
        assert widget.alpha == 4.0 and "alpha must be a finite number" in sent[-2]["error"]
    widget.set_state({"hook": RESID1, "feature": 12, "action": "steer", "alpha": -7.5})
    assert (widget.hook, widget.feature, widget.action, widget.alpha) == (RESID1, 12, "steer", -7.5)


def test_switching_to_a_smaller_dictionary_resets_an_out_of_range_feature(random_model, saes):
    widget = TokenFeatures(random_model, saes, PROMPT, hook=RESID0, feature=200)
    widget.hook = RESID1
    assert widget.feature == 0 and widget.sae is saes[RESID1]


def test_the_front_end_gets_each_dictionarys_place_width_and_layer(random_model):
    transcoder = build_sae(SAEConfig(d_in=128, d_sae=16, architecture="relu", hook_name="blocks.2.ln2.hook_normalized",
                                     hook_name_out="blocks.2.hook_mlp_out"), seed=0)
    widget = TokenFeatures(random_model, [topk_sae(RESID1, 64, 1), transcoder], PROMPT)
    assert widget.hooks == [RESID1, "blocks.2.ln2.hook_normalized"]
    assert widget.labels == ["resid_post1", "blocks.2.ln2.hook_normalized"]
    assert (widget.sizes, widget.layers) == ([64, 16], [1, 2])


def test_constructor_checks(random_model, saes):
    with pytest.raises(Exception, match="hook must be one of"):
        TokenFeatures(random_model, saes, PROMPT, hook="blocks.3.hook_resid_post")
    with pytest.raises(Exception, match=r"feature must be an integer in \[0, 63\]"):
        TokenFeatures(random_model, saes, PROMPT, hook=RESID1, feature=64)
    with pytest.raises(ValueError, match="top_k"):
        TokenFeatures(random_model, saes, PROMPT, top_k=0)
    with pytest.raises(ValueError, match="No SAEs given"):
        TokenFeatures(random_model, [], PROMPT)
    with pytest.raises(ValueError, match="have no dictionary reading"):
        TokenFeatures(random_model, saes, feature_activations(random_model, saes[RESID0], PROMPT))


def test_a_feature_activations_result_is_shown_as_given(random_model, saes, acts):
    result = feature_activations(random_model, saes, PROMPT)
    widget = TokenFeatures(random_model, saes, result, hook=RESID1)
    assert widget.result is result and widget.tokens == result.str_tokens
    torch.testing.assert_close(widget.activations(), acts[RESID1])


def test_static_preview_colours_tokens_and_escapes_them(random_model, saes):
    widget = TokenFeatures(random_model, saes, PROMPT, hook=RESID1, feature=7)
    widget.set_trait("tokens", ["<script>alert(1)</script>", *widget.tokens[1:]])
    html = widget._repr_mimebundle_()[0]["text/html"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "background:rgb(" in html and "activation of resid_post1/7" in html
    assert "application/vnd.jupyter.widget-view+json" in widget._repr_mimebundle_()[0]


# ---- honest defaults (#16): the view opens on a feature that fires, names dense features, refuses what it cannot show
def test_without_hook_or_feature_it_opens_on_the_most_active_feature_of_the_last_residual_sae(random_model, acts):
    """The deepest residual dictionary (not the first given), and its largest activation past the BOS token."""
    attn = topk_sae("blocks.0.hook_attn_out", 32, 2)
    given = SAESet.of([attn, topk_sae(RESID0, 256, 0), topk_sae(RESID1, 64, 1)])
    widget = TokenFeatures(random_model, given, PROMPT)
    assert widget.hook == RESID1
    assert widget.feature == int(acts[RESID1][1:].max(0).values.argmax())
    assert float(acts[RESID1][1:, widget.feature].max()) > 0


def test_feature_none_chooses_within_the_given_dictionary_and_without_a_residual_one_the_first(random_model, saes, acts):
    assert TokenFeatures(random_model, saes, PROMPT, hook=RESID0).feature == int(acts[RESID0][1:].max(0).values.argmax())
    attn = topk_sae("blocks.1.hook_attn_out", 32, 3)
    widget = TokenFeatures(random_model, [attn], PROMPT)
    with torch.no_grad():
        _, cache = random_model.run_with_cache(random_model.to_tokens(PROMPT))
        by_hand = attn.encode(cache["blocks.1.hook_attn_out"][0]).float()
    assert (widget.hook, widget.feature) == ("blocks.1.hook_attn_out", int(by_hand[1:].max(0).values.argmax()))


def test_alpha_limits_go_down_as_a_read_only_trait(widget):
    assert widget.limits == {"alpha": [-1e4, 1e4]}
    assert "limits" not in widget._front_end_writable


def test_a_prompt_longer_than_the_context_is_refused_naming_the_context_length(random_model, saes):
    long = " John" * (random_model.cfg.n_ctx + 10)
    with pytest.raises(ValueError, match=rf"has {random_model.cfg.n_ctx + 11} tokens; the model reads 1 to {random_model.cfg.n_ctx}"):
        TokenFeatures(random_model, saes, long)


def test_replies_say_how_often_each_feature_fires_on_the_prompt(widget, acts):
    """Without corpus statistics, density is the fraction of the prompt's tokens (past BOS) where the feature is active."""
    widget.hook, widget.feature = RESID0, 11
    ok, result = ask(widget, "activations")
    by_hand = acts[RESID0][1:, 11]
    assert ok and result["firing"]["over"] == "prompt" and result["firing"]["n_tokens"] == by_hand.numel()
    assert result["firing"]["active"] == int((by_hand > 0).sum())
    ok, result = ask(widget, "token", position=4)
    for index, firing in zip(decode_int32(result["indices"]), result["firings"]):
        column = acts[RESID0][1:, int(index)]
        assert firing["active"] == int((column > 0).sum())
        assert firing["dense"] == (float((column > 0).float().mean()) > 0.3)


def test_with_corpus_statistics_density_is_the_corpus_density(random_model, saes, acts):
    from interpwidgets.sae import feature_stats

    rows = random_model.to_tokens(PROMPT).repeat(2, 1)
    stats = feature_stats(random_model, saes[RESID1], rows, progress=False)
    widget = TokenFeatures(random_model, saes, PROMPT, hook=RESID1, feature=5, stats=stats)
    ok, result = ask(widget, "activations")
    assert ok and result["firing"]["over"] == "corpus" and result["firing"]["n_tokens"] == rows.numel()
    fraction = float((acts[RESID1][:, 5] > 0).float().mean())  # the corpus is the prompt twice, BOS included
    assert result["firing"]["fraction"] == pytest.approx(fraction)
    assert result["firing"]["dense"] == (fraction > 0.1)
    widget.hook = RESID0  # no statistics for this one: back to the prompt
    ok, result = ask(widget, "activations")
    assert result["firing"]["over"] == "prompt"


def test_the_replies_carry_the_labels_of_the_features_they_show(random_model, acts):
    """The labels are those the test gives the even features: the chosen feature's (None when unlabelled), one per
    listed feature of a token ("" when unlabelled), and those of the per-token top features sent for hover."""
    sae = topk_sae(RESID1, 64, 1)
    sae.labels = FeatureLabels(64, {i: f"label of {i}" for i in range(0, 64, 2)})
    widget = TokenFeatures(random_model, sae, PROMPT, hook=RESID1, feature=4)
    ok, result = ask(widget, "activations")
    assert ok and result["label"] == "label of 4"
    assert "label of 4" in widget._static_html()
    widget.feature = 5
    ok, result = ask(widget, "activations")
    assert ok and result["label"] is None
    ok, result = ask(widget, "token", position=3)
    listed = decode_int32(result["indices"]).tolist()
    assert ok and listed == acts[RESID1][3].topk(12).indices[:len(listed)].tolist()
    assert result["labels"] == [f"label of {i}" if i % 2 == 0 else "" for i in listed]
    ok, result = ask(widget, "features")
    shown = set(decode_int32(result["indices"]).flatten().tolist())
    assert ok and result["labels"] == {str(i): f"label of {i}" for i in sorted(shown) if i % 2 == 0}
