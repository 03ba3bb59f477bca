"""AttentionPatterns: shows an iw.lens result (or computes one from a model and a prompt, or takes a pattern
tensor); the browser writes layer / head / weighting and asks with bare verbs; replies, validation, byte budget,
preview."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interpwidgets.lens import attention_patterns
from interpwidgets.widgets import AttentionPatterns
from interpwidgets.widgets.testing import ask, decode_array

PROMPT = "When Mary and John went to the store, John gave a drink to"


def causal_patterns(heads: int, n: int, seed: int = 0, layers: int | None = None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (heads, n, n) if layers is None else (layers, heads, n, n)
    scores = torch.randn(shape, generator=generator) * 3
    scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
    return scores.softmax(-1)


def reply_bytes(widget: AttentionPatterns, method: str) -> int:
    reply, buffers = widget.handle_message({"kind": "iw:request", "id": "t-1", "method": method, "params": {}})
    assert reply["ok"], reply
    return len(json.dumps(reply).encode()) + sum(len(b) for b in buffers)


def unpack_tril(values: np.ndarray, n: int) -> np.ndarray:
    full = np.full((n, n), np.nan, np.float32)
    full[np.tril_indices(n)] = values
    return full


def showing(widget: AttentionPatterns, **traits) -> AttentionPatterns:
    """The widget after the browser wrote these traits (checked as a front-end update is)."""
    widget.set_state(traits)
    assert all(getattr(widget, name) == value for name, value in traits.items()), widget.last_error
    return widget


@pytest.fixture(scope="module")
def cached(random_model):
    with torch.no_grad():
        return random_model.run_with_cache(random_model.to_tokens(PROMPT))[1]


@pytest.fixture
def from_model(random_model):
    return AttentionPatterns(random_model, PROMPT, layer=1, head=2)


def test_the_widget_shows_the_lens_result_it_is_given(random_model):
    result = attention_patterns(random_model, PROMPT)
    widget = AttentionPatterns(result, head=3)
    assert widget.result is result
    assert widget.tokens == random_model.to_str_tokens(PROMPT) and (widget.n_layers, widget.n_heads) == (4, 4)
    assert widget.weightings == ["attention", "value"] and widget.head == 3
    with pytest.raises(ValueError, match="pass nothing else"):
        AttentionPatterns(result, PROMPT)


def test_from_a_model_the_widget_computes_the_lens_result(random_model, from_model):
    torch.testing.assert_close(from_model.result.patterns, attention_patterns(random_model, PROMPT).patterns)
    assert (from_model.selection.layer, from_model.selection.head) == (1, 2)


def test_pattern_reply_is_the_shown_heads_lower_triangle(from_model, cached):
    """After the browser shows L2H3, the bare "pattern" request answers that head's probabilities (from the cache)."""
    ok, result = ask(showing(from_model, layer=2, head=3), "pattern")
    assert ok, result
    assert (result["layer"], result["head"], result["weighting"], result["layout"]) == (2, 3, "attention", "tril")
    assert result["pattern"]["dtype"] == "float16"  # tiny weights keep their value (uint8 made them 0)
    expected = cached["blocks.2.attn.hook_pattern"][0, 3].numpy()
    got = unpack_tril(decode_array(result["pattern"]), len(from_model.tokens))
    np.testing.assert_allclose(np.tril(got), expected, atol=1e-3)


def test_value_weighted_reply_scales_keys_by_their_write_through_w_o(random_model, from_model, cached):
    ok, result = ask(showing(from_model, layer=0, head=1, weighting="value"), "pattern")
    assert ok, result
    v = cached["blocks.0.attn.hook_v"][0]  # [pos, head, d_head]
    weighted = [cached["blocks.0.attn.hook_pattern"][0, h] * (v[:, h] @ random_model.W_O[0, h]).norm(dim=-1)[None]
                for h in range(4)]
    got = unpack_tril(decode_array(result["pattern"]), len(from_model.tokens))
    np.testing.assert_allclose(np.tril(got), weighted[1].detach().numpy(), atol=result["domain_max"] / 255 + 1e-3)
    assert result["domain_max"] == pytest.approx(max(float(w.max()) for w in weighted), rel=2e-3)
    assert "value-weighted" in result["units"]


def test_thumbnails_are_block_maxima_of_the_shown_layer():
    pattern = causal_patterns(3, 200, layers=2)
    widget = AttentionPatterns(pattern=pattern, tokens=[f"t{i}" for i in range(200)])
    ok, result = ask(showing(widget, layer=1), "thumbnails")
    thumbs = decode_array(result["thumbnails"])
    assert ok and result["layer"] == 1 and thumbs.shape == (3, 50, 50)  # blocks of 4 tokens
    assert thumbs[2, 1, 2] == pytest.approx(pattern[1, 2, 4:8, 8:12].max().item(), abs=float(pattern.max()) / 255)
    assert result["domain_max"] == 1.0


def test_non_causal_patterns_travel_in_full():
    widget = AttentionPatterns(pattern=torch.full((2, 5, 5), 0.2), tokens=list("abcde"), head=1)
    ok, result = ask(widget, "pattern")
    assert ok and result["layout"] == "full"
    np.testing.assert_allclose(decode_array(result["pattern"]), np.full(25, 0.2), atol=1e-3)


@pytest.mark.parametrize("params", [{"layer": 1}, {"layer": 0, "head": 0, "weighting": "attention"}])
def test_requests_carry_only_the_verb(from_model, params):
    """What to send is the layer / head / weighting traits; a request repeating them is refused, not obeyed."""
    for method in ("pattern", "thumbnails"):
        ok, error = ask(from_model, method, **params)
        assert not ok and "unexpected parameters" in error


def test_value_weighting_needs_value_norms(monkeypatch):
    widget = AttentionPatterns(pattern=causal_patterns(2, 6), tokens=list("abcdef"))
    assert widget.weightings == ["attention"]
    errors = []
    monkeypatch.setattr(widget, "send_error", errors.append)
    monkeypatch.setattr(widget, "send_state", lambda keys: None)
    widget.set_state({"weighting": "value"})
    assert widget.weighting == "attention" and "needs value norms" in errors[-1]
    with pytest.raises(Exception, match="needs value norms"):
        widget.weighting = "value"


def test_front_end_updates_are_checked(from_model, monkeypatch):
    errors = []
    monkeypatch.setattr(from_model, "send_error", errors.append)
    monkeypatch.setattr(from_model, "send_state", lambda keys: None)
    from_model.set_state({"head": 3})
    assert from_model.head == 3 and errors == []
    from_model.set_state({"head": 9})
    assert from_model.head == 3 and "head must be between 0 and 3" in errors[-1]
    from_model.set_state({"layer": 4})
    assert from_model.layer == 1 and "layer must be between 0 and 3" in errors[-1]
    from_model.set_state({"tokens": ["x"]})
    assert from_model.tokens[0] != "x" and "may not change ['tokens']" in errors[-1]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pattern": torch.rand(2, 4, 4), "tokens": list("abc")}, ValueError, "3 tokens for a pattern over 4"),
        ({"pattern": torch.rand(1, 3, 3)}, ValueError, "needs its tokens"),
        ({"pattern": torch.rand(2, 3, 3), "tokens": list("abc"), "value_norms": torch.rand(3, 3)}, ValueError, "value_norms"),
        ({}, ValueError, "needs an AttentionResult, a model and a prompt"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(kwargs, error, match):
    with pytest.raises(error, match=match):
        AttentionPatterns(**kwargs)


def test_twelve_heads_at_512_tokens_cost_under_a_megabyte():
    """What the browser receives to show a layer: the widget state, all thumbnails and the open head."""
    n = 512
    widget = AttentionPatterns(pattern=causal_patterns(12, n), tokens=[f" w{i}" for i in range(n)])
    total = len(json.dumps(widget.get_state()).encode()) + reply_bytes(widget, "thumbnails") + reply_bytes(widget, "pattern")
    assert widget.view == "text"  # long prompts open as text
    assert total < 1_000_000


def test_static_preview_escapes_tokens_and_stays_small():
    tokens = ["<img src=x onerror=alert(1)>", "&", "<script>", "ok"]
    widget = AttentionPatterns(pattern=causal_patterns(2, 4), tokens=tokens)
    html = widget._repr_mimebundle_()[0]["text/html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<script" not in html and "<img src=x" not in html
    assert "data:image/png;base64," in html
    long = AttentionPatterns(pattern=causal_patterns(12, 2048), tokens=[f" w{i}" for i in range(2048)])
    assert len(long._repr_mimebundle_()[0]["text/html"]) < 1_000_000
