"""Feature helpers on the random-weight teaching architecture, checked against direct computation."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.sae import (SAEConfig, SAESet, ablate_features, build_sae, feature_activations, logit_effects,
                               steer_feature, top_activating)

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def sae():
    s = build_sae(SAEConfig(128, 64, "relu", HOOK), seed=0)
    with torch.no_grad():  # a tied encoder with a negative bias: every feature fires on some tokens, not all
        s.W_enc.copy_(s.W_dec.T)
        s.b_enc.fill_(-0.5)
    return s


def test_feature_activations_per_token(random_model, sae):
    acts, str_tokens = feature_activations(random_model, sae, "the cat sat on the mat")
    tokens = random_model.to_tokens("the cat sat on the mat")
    _, cache = random_model.run_with_cache(tokens, names_filter=[HOOK])
    torch.testing.assert_close(acts, sae.encode(cache[HOOK][0]))
    assert acts.shape == (len(str_tokens), 64) and str_tokens[0] == random_model.to_str_tokens(tokens[0])[0]


def test_top_activating_returns_the_largest_activations_with_context(random_model, sae):
    rows = torch.randint(1, 700, (12, 20), generator=torch.Generator().manual_seed(0))
    _, cache = random_model.run_with_cache(rows, names_filter=[HOOK])
    all_acts = sae.encode(cache[HOOK])[..., 5]  # [12, 20]
    expected = all_acts.flatten().topk(4).values
    examples = top_activating(random_model, sae, 5, rows, k=4, window=(3, 2), batch_size=5)
    torch.testing.assert_close(torch.tensor([e.activation for e in examples]), expected)
    for e in examples:
        assert all_acts[e.row, e.position].item() == pytest.approx(e.activation)
        assert e.activations[e.focus] == pytest.approx(e.activation) and len(e.str_tokens) == len(e.activations) <= 6


def test_logit_effects_are_the_decoder_row_through_the_unembedding(random_model, sae):
    effects = logit_effects(random_model, sae, 3, k=5)
    torch.testing.assert_close(effects["values"], sae.W_dec[3] @ random_model.W_U)
    assert effects["top"][0][1] == pytest.approx(effects["values"].max().item())
    assert effects["bottom"][0][1] == pytest.approx(effects["values"].min().item())


def test_ablating_features_equals_splicing_with_those_features_zeroed(random_model, sae):
    tokens = torch.randint(1, 700, (2, 10), generator=torch.Generator().manual_seed(1))
    with ablate_features(random_model, sae, [1, 2, 3]):
        ablated = random_model(tokens)
    _, cache = random_model.run_with_cache(tokens, names_filter=[HOOK])
    f = sae.encode(cache[HOOK])
    f_zeroed = f.clone()
    f_zeroed[..., [1, 2, 3]] = 0
    expected_resid = cache[HOOK] - (f - f_zeroed) @ sae.W_dec
    hooked = random_model.run_with_hooks(tokens, fwd_hooks=[(HOOK, lambda a, hook: expected_resid)])
    torch.testing.assert_close(ablated, hooked)
    assert not torch.allclose(ablated, random_model(tokens))


def test_steering_adds_the_scaled_decoder_direction(random_model, sae):
    tokens = torch.randint(1, 700, (1, 8), generator=torch.Generator().manual_seed(2))
    with steer_feature(random_model, sae, 7, alpha=3.0, positions=[-1]):
        _, cache = random_model.run_with_cache(tokens, names_filter=[HOOK])
    _, clean = random_model.run_with_cache(tokens, names_filter=[HOOK])
    delta = cache[HOOK] - clean[HOOK]
    torch.testing.assert_close(delta[0, -1], 3.0 * sae.W_dec[7])
    assert delta[0, :-1].abs().max() == 0


def test_feature_index_out_of_range_is_named(random_model, sae):
    with pytest.raises(IndexError, match="feature 64 is out of range"):
        logit_effects(random_model, sae, 64)


def test_saeset_views_by_kind():
    saes = SAESet.of([
        build_sae(SAEConfig(128, 16, "relu", f"blocks.{layer}.{hook}", hook_name_out=out))
        for layer in (1, 0) for hook, out in (("hook_resid_post", None), ("hook_attn_out", None), ("hook_mlp_out", None),
                                              ("ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out"))
    ])
    assert [s.cfg.hook_name for s in saes.resid] == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    assert [s.cfg.hook_name for s in saes.attn] == ["blocks.0.hook_attn_out", "blocks.1.hook_attn_out"]
    assert [s.cfg.hook_name for s in saes.mlp] == ["blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]
    assert [s.cfg.hook_name_out for s in saes.transcoders] == ["blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]
    with pytest.raises(ValueError, match="keyed by each dictionary's input hook"):
        saes["blocks.5.hook_resid_post"] = saes.resid[0]
