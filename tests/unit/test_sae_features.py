"""Feature helpers on the random-weight teaching architecture, checked against direct computation: activations
on a prompt, top-activating contexts, logit effects, the feature-index check, ablation and steering, and the one
normaliser of "an SAE, a list, a dict or an SAESet"."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interpwidgets.sae import (SAEConfig, SAESet, ablate_features, build_sae, check_feature, feature_activations,
                               logit_effects, save, steer_feature, top_activating)

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def sae():
    s = build_sae(SAEConfig(128, 64, "relu", HOOK), seed=0)
    with torch.no_grad():  # a tied encoder with a negative bias: every feature fires on some tokens, not all
        s.W_enc.copy_(s.W_dec.T)
        s.b_enc.fill_(-0.5)
    return s


def test_feature_activations_per_token(random_model, sae):
    result = feature_activations(random_model, sae, "the cat sat on the mat")
    tokens = random_model.to_tokens("the cat sat on the mat")
    _, cache = random_model.run_with_cache(tokens, names_filter=[HOOK])
    torch.testing.assert_close(result.acts, sae.encode(cache[HOOK][0]))
    assert result.acts.shape == (len(result.str_tokens), 64) and result.str_tokens[0] == random_model.to_str_tokens(tokens[0])[0]


def test_feature_activations_of_several_saes_come_from_one_forward_with_its_logits(random_model, sae):
    """Every dictionary's activations are its encoding of its hook, and `logits` are the model's output."""
    other = build_sae(SAEConfig(128, 32, "topk", "blocks.0.hook_attn_out", k=4), seed=3)
    tokens = torch.tensor([5, 17, 2, 99, 3])
    result = feature_activations(random_model, {HOOK: sae, other.cfg.hook_name: other}, tokens)
    with torch.no_grad():
        logits, cache = random_model.run_with_cache(tokens[None])
    torch.testing.assert_close(result[HOOK], sae.encode(cache[HOOK][0]))
    torch.testing.assert_close(result["blocks.0.hook_attn_out"], other.encode(cache["blocks.0.hook_attn_out"][0]))
    torch.testing.assert_close(result.logits, logits[0])
    assert result.tokens.tolist() == tokens.tolist()
    with pytest.raises(ValueError, match="pick one by hook"):
        _ = result.acts
    with pytest.raises(KeyError, match="No dictionary reads"):
        _ = result["blocks.3.hook_resid_post"]


def test_top_activating_returns_the_rows_with_the_highest_peaks_with_context(random_model, sae):
    rows = torch.randint(1, 700, (12, 20), generator=torch.Generator().manual_seed(0))
    _, cache = random_model.run_with_cache(rows, names_filter=[HOOK])
    all_acts = sae.encode(cache[HOOK])[..., 5]  # [12, 20]
    peaks = all_acts.max(dim=1)
    expected_rows = peaks.values.argsort(descending=True)[:4]
    examples = top_activating(random_model, sae, 5, rows, k=4, window=(3, 2), batch_size=5)
    assert [e.row for e in examples] == expected_rows.tolist()
    torch.testing.assert_close(torch.tensor([e.activation for e in examples]), peaks.values[expected_rows])
    for e in examples:
        assert e.position == int(peaks.indices[e.row])
        start = e.position - e.focus
        assert e.str_tokens == [random_model.tokenizer.decode([t]) for t in rows[e.row, start:start + len(e.str_tokens)].tolist()]
        np.testing.assert_allclose(e.activations, all_acts[e.row, start:start + len(e.activations)].detach(), rtol=1e-5, atol=1e-6)
        assert len(e.str_tokens) == len(e.activations) <= 6


def test_logit_effects_are_the_decoder_row_through_the_unembedding(random_model, sae):
    effects = logit_effects(random_model, sae, 3, k=5)
    direct = (sae.W_dec[3] @ random_model.W_U).detach()
    torch.testing.assert_close(effects.values, direct)
    assert [v for _, v in effects.top] == pytest.approx(direct.topk(5).values.tolist(), rel=1e-5)
    assert [v for _, v in effects.bottom] == pytest.approx(direct.topk(5, largest=False).values.tolist(), rel=1e-5)


def test_logit_effect_tokens_are_the_decoded_text_the_widgets_show(random_model, sae):
    """Tokens read as text (" went"), not as vocabulary entries ("\u0120went")."""
    effects = logit_effects(random_model, sae, 3, k=5)
    direct = (sae.W_dec[3] @ random_model.W_U).detach()
    assert [t for t, _ in effects.top] == [random_model.tokenizer.decode([i]) for i in direct.topk(5).indices.tolist()]


def test_logit_effects_refuse_a_dictionary_outside_the_residual_width(random_model):
    per_head = build_sae(SAEConfig(32, 16, "relu", "blocks.0.attn.hook_z"), seed=0)
    with pytest.raises(ValueError, match="no direct path to the unembedding"):
        logit_effects(random_model, per_head, 0)


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


@pytest.mark.parametrize("bad", [64, -1, 2.5, True, "3", None])
def test_a_feature_index_that_is_not_an_integer_in_range_is_a_value_error(random_model, sae, bad):
    with pytest.raises(ValueError, match=r"feature must be an integer in \[0, 63\]"):
        logit_effects(random_model, sae, bad)


def test_check_feature_accepts_python_numpy_and_tensor_integers():
    assert [check_feature(i, 8) for i in (3, np.int64(3), torch.tensor(3))] == [3, 3, 3]


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


def test_saeset_of_takes_one_sae_a_list_a_dict_or_a_set_and_refuses_the_rest(sae):
    other = build_sae(SAEConfig(128, 16, "relu", "blocks.0.hook_resid_post"), seed=1)
    assert list(SAESet.of(sae)) == [HOOK]
    assert list(SAESet.of([sae, other])) == [HOOK, "blocks.0.hook_resid_post"]
    assert SAESet.of({"any key": sae}) == {HOOK: sae}
    assert SAESet.of(SAESet.of([other, sae])) == {"blocks.0.hook_resid_post": other, HOOK: sae}
    assert SAESet.of(s for s in [sae]) == {HOOK: sae}
    with pytest.raises(ValueError, match="Two dictionaries read the same hook"):
        SAESet.of([sae, sae])
    for bad in (HOOK, 42, [object()]):
        with pytest.raises(TypeError):
            SAESet.of(bad)


class _SaeLensConfig:
    """The parts of a sae_lens config that duck typing relies on."""

    def __init__(self, raw: dict):
        self.raw = raw

    def to_dict(self) -> dict:
        return self.raw


class _SaeLensSAE(torch.nn.Module):
    def __init__(self, raw: dict, state: dict):
        super().__init__()
        self.cfg = _SaeLensConfig(raw)
        for name, value in state.items():
            setattr(self, name, torch.nn.Parameter(value))


def test_saeset_of_converts_a_sae_lens_object_alone_or_in_a_list(sae, tmp_path):
    save(sae, tmp_path / "relu")
    raw = json.loads((tmp_path / "relu" / "cfg.json").read_text())
    raw["metadata"].pop("interpwidgets")
    foreign = _SaeLensSAE(raw, {k: v.detach().clone() for k, v in sae.state_dict().items()})
    x = torch.randn(3, 128)
    for given in (foreign, [foreign]):
        converted = SAESet.of(given)[HOOK]
        torch.testing.assert_close(converted.encode(x), sae.encode(x))
