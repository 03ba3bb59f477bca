"""iw.lens.attention_patterns against hand computations: patterns are the causal softmax of q.k / sqrt(d_head)
computed from the hooked queries and keys, value norms are ||v_j W_O^h|| per head, and the result checks what it
is given."""

from __future__ import annotations

import pytest
import torch

import interpwidgets.lens.attention as attention_module
from interpwidgets import config
from interpwidgets.lens import AttentionResult, attention_patterns

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def cached(random_model):
    with torch.no_grad():
        return random_model.run_with_cache(random_model.to_tokens(PROMPT))[1]


@pytest.fixture(scope="module")
def result(random_model):
    return attention_patterns(random_model, PROMPT)


def test_patterns_are_the_causal_softmax_of_the_hooked_queries_and_keys(random_model, cached, result):
    """Every layer's patterns equal softmax(q_i . k_j / sqrt(d_head)) over keys j <= i, from hook_q and hook_k."""
    d_head = random_model.cfg.d_head
    assert result.tokens == random_model.to_str_tokens(PROMPT)
    n = len(result.tokens)
    assert result.patterns.shape == (random_model.cfg.n_layers, random_model.cfg.n_heads, n, n)
    later = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
    for layer in range(random_model.cfg.n_layers):
        q, k = cached[f"blocks.{layer}.attn.hook_q"][0], cached[f"blocks.{layer}.attn.hook_k"][0]  # [pos, head, d_head]
        scores = torch.einsum("qhd,khd->hqk", q, k) / d_head**0.5
        expected = scores.masked_fill(later, float("-inf")).softmax(-1)
        torch.testing.assert_close(result.patterns[layer].float(), expected, atol=1e-3, rtol=0)  # kept as float16
    torch.testing.assert_close(result.patterns.float().sum(-1), torch.ones(result.patterns.shape[:3]), atol=4e-3, rtol=0)
    assert all(result.is_causal(layer) for layer in range(result.n_layers))


def test_value_norms_are_each_keys_write_through_w_o(random_model, cached, result):
    """value_norms[l, h, j] = ||v_j^h W_O^h|| computed head by head, and the value weighting is alpha_ij times it;
    summing those vectors' norms over keys bounds the head's output ||z_i W_O|| (triangle inequality)."""
    assert result.weightings == ["attention", "value"]
    for layer in range(random_model.cfg.n_layers):
        v, z = cached[f"blocks.{layer}.attn.hook_v"][0], cached[f"blocks.{layer}.attn.hook_z"][0]  # [pos, head, d_head]
        for head in range(random_model.cfg.n_heads):
            w_o = random_model.W_O[layer, head].detach()  # [d_head, d_model]
            norms = torch.stack([(v[j, head] @ w_o).norm() for j in range(v.shape[0])])
            torch.testing.assert_close(result.value_norms[layer, head], norms, rtol=1e-4, atol=1e-5)
            weighted = result.pattern(layer, head, weighting="value")
            alpha = cached[f"blocks.{layer}.attn.hook_pattern"][0, head]
            torch.testing.assert_close(weighted, alpha * norms[None, :], atol=2e-3 * float(norms.max()), rtol=0)
            assert ((z[:, head] @ w_o).norm(dim=-1) <= weighted.sum(-1) * (1 + 2e-3) + 1e-5).all()


def test_token_ids_give_the_same_patterns_as_text(random_model, result):
    ids = random_model.to_tokens(PROMPT)[0]
    torch.testing.assert_close(attention_patterns(random_model, ids.tolist()).patterns, result.patterns)


def test_a_pattern_without_value_norms_offers_only_the_attention_weighting():
    pattern = torch.tril(torch.ones(2, 3, 3))
    result = AttentionResult(list("abc"), pattern / pattern.sum(-1, keepdim=True))
    assert (result.n_layers, result.n_heads, result.n_tokens, result.weightings) == (1, 2, 3, ["attention"])
    torch.testing.assert_close(result.pattern(0, 1)[2], torch.full((3,), 1 / 3), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="weighting 'value' is not available"):
        result.pattern(0, 0, weighting="value")
    assert not AttentionResult(list("ab"), torch.full((1, 2, 2), 0.5)).is_causal(0)


@pytest.mark.parametrize(
    ("tokens", "patterns", "norms", "error", "match"),
    [
        (list("abc"), torch.rand(2, 4, 4), None, ValueError, "3 tokens for a pattern over 4"),
        (list("abcd"), torch.rand(4, 5), None, ValueError, "must be \\[heads, query, key\\]"),
        (list("abc"), -torch.rand(1, 3, 3), None, ValueError, "non-negative"),
        ([1, 2, 3], torch.rand(1, 3, 3), None, TypeError, "tokens must be strings"),
        (list("abc"), torch.rand(2, 3, 3), torch.rand(3, 3), ValueError, "value_norms"),
        (list("abc"), torch.rand(2, 3, 3), -torch.rand(2, 3), ValueError, "value_norms must be finite and non-negative"),
    ],
)
def test_a_result_refuses_inconsistent_inputs_with_a_reason(tokens, patterns, norms, error, match):
    with pytest.raises(error, match=match):
        AttentionResult(tokens, patterns, norms)


def test_prompts_longer_than_the_context_point_to_precomputed_patterns(random_model):
    with pytest.raises(ValueError, match="AttentionResult\\(tokens, patterns\\)"):
        attention_patterns(random_model, " the" * 300)


@pytest.mark.parametrize(("setting", "argument", "disabled"), [(True, None, False), (False, None, True), (False, True, False)])
def test_progress_follows_iw_config_unless_given(random_model, monkeypatch, setting, argument, disabled):
    bars = []
    real = attention_module.tqdm
    monkeypatch.setattr(attention_module, "tqdm", lambda **kwargs: bars.append(kwargs) or real(**kwargs))
    with config.scoped(progress=setting):
        attention_patterns(random_model, "When Mary", progress=argument)
    assert [bar["disable"] for bar in bars] == [disabled] and bars[0]["delay"] >= 1.0
