"""AttentionPatterns: data from a model or a pattern tensor, lazy replies, validation, byte budget, preview."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from interpwidgets.widgets import AttentionPatterns
from interpwidgets.widgets.testing import decode_array

PROMPT = "When Mary and John went to the store, John gave a drink to"


def causal_patterns(heads: int, n: int, seed: int = 0, layers: int | None = None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (heads, n, n) if layers is None else (layers, heads, n, n)
    scores = torch.randn(shape, generator=generator) * 3
    scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
    return scores.softmax(-1)


def ask(widget: AttentionPatterns, method: str, **params: Any) -> tuple[dict, list[bytes]]:
    return widget.handle_message({"kind": "iw:request", "id": "t-1", "method": method, "params": params})


def wire(reply: dict, key: str, buffers: list[bytes]) -> dict:
    array = dict(reply["result"][key])
    array["data"] = buffers[array["data"]["$buffer"]]
    return array


def reply_bytes(reply: dict, buffers: list[bytes]) -> int:
    return len(json.dumps(reply).encode()) + sum(len(b) for b in buffers)


def unpack_tril(values: np.ndarray, n: int) -> np.ndarray:
    full = np.full((n, n), np.nan, np.float32)
    full[np.tril_indices(n)] = values
    return full


@pytest.fixture(scope="module")
def from_model(random_model):
    return AttentionPatterns(random_model, PROMPT, layer=1, head=2)


def test_from_model_keeps_every_layer_and_the_value_norms(random_model, from_model):
    tokens = random_model.to_tokens(PROMPT)
    _, cache = random_model.run_with_cache(tokens)
    data = from_model.data
    assert from_model.tokens == random_model.to_str_tokens(tokens[0])
    assert (from_model.n_layers, from_model.n_heads) == (4, 4)
    torch.testing.assert_close(data.patterns[2].float(), cache["blocks.2.attn.hook_pattern"][0], atol=1e-3, rtol=0)
    v = cache["blocks.3.attn.hook_v"][0]  # [pos, head, d_head]
    expected = torch.stack([(v[:, h] @ random_model.W_O[3, h]).norm(dim=-1) for h in range(4)])
    torch.testing.assert_close(data.value_norms[3], expected, rtol=1e-4, atol=1e-5)
    assert from_model.weightings == ["attention", "value"]
    assert (from_model.selection.layer, from_model.selection.head) == (1, 2)


def test_pattern_reply_is_the_heads_lower_triangle(from_model):
    reply, buffers = ask(from_model, "pattern", layer=2, head=3, weighting="attention")
    assert reply["ok"] and reply["result"]["layout"] == "tril"
    array = wire(reply, "pattern", buffers)
    assert array["dtype"] == "uint8" and array["compression"] == "deflate"
    n = len(from_model.tokens)
    expected = from_model.data.patterns[2, 3].float().numpy()
    np.testing.assert_allclose(np.tril(unpack_tril(decode_array(array), n)), expected, atol=array["scale"] / 2 + 1e-3)


def test_value_weighted_reply_scales_keys_by_their_norms(from_model):
    reply, buffers = ask(from_model, "pattern", layer=0, head=1, weighting="value")
    n = len(from_model.tokens)
    got = unpack_tril(decode_array(wire(reply, "pattern", buffers)), n)
    data = from_model.data
    expected = data.patterns[0, 1].float() * data.value_norms[0, 1][None, :]
    np.testing.assert_allclose(np.tril(got), expected.numpy(), atol=float(expected.max()) / 255 + 1e-3)
    assert reply["result"]["domain_max"] == pytest.approx(
        max(float((data.patterns[0, h].float() * data.value_norms[0, h][None]).max()) for h in range(4)), rel=1e-5
    )


def test_thumbnails_are_block_maxima():
    pattern = causal_patterns(3, 200)
    widget = AttentionPatterns(pattern=pattern, tokens=[f"t{i}" for i in range(200)])
    reply, buffers = ask(widget, "thumbnails", layer=0, weighting="attention")
    thumbs = decode_array(wire(reply, "thumbnails", buffers))
    assert thumbs.shape == (3, 50, 50)  # blocks of 4 tokens
    expected = pattern[1, 4:8, 8:12].max().item()
    assert thumbs[1, 1, 2] == pytest.approx(expected, abs=float(pattern.max()) / 255)
    assert reply["result"]["domain_max"] == 1.0


def test_non_causal_patterns_travel_in_full():
    pattern = torch.full((2, 5, 5), 0.2)
    widget = AttentionPatterns(pattern=pattern, tokens=list("abcde"))
    reply, buffers = ask(widget, "pattern", layer=0, head=1, weighting="attention")
    assert reply["result"]["layout"] == "full"
    np.testing.assert_allclose(decode_array(wire(reply, "pattern", buffers)), np.full(25, 0.2), atol=1e-3)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"layer": 4, "head": 0, "weighting": "attention"}, "layer must be between 0 and 3"),
        ({"layer": 0, "head": -1, "weighting": "attention"}, "head must be between 0 and 3"),
        ({"layer": 0, "head": 0, "weighting": "values"}, "weighting must be one of"),
        ({"layer": "0", "head": 0, "weighting": "attention"}, "layer must be an integer"),
        ({"layer": 0, "head": 0}, "weighting must be one of"),
        ({"layer": 0, "head": 0, "weighting": "attention", "extra": 1}, "unexpected parameters"),
    ],
)
def test_malformed_pattern_requests_get_error_replies(from_model, params, match):
    reply, buffers = ask(from_model, "pattern", **params)
    assert reply["ok"] is False and match in reply["error"] and buffers == []


def test_value_weighting_needs_value_norms():
    widget = AttentionPatterns(pattern=causal_patterns(2, 6), tokens=list("abcdef"))
    assert widget.weightings == ["attention"]
    reply, _ = ask(widget, "thumbnails", layer=0, weighting="value")
    assert reply["ok"] is False and "weighting must be one of ['attention']" in reply["error"]
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
    from_model.set_state({"tokens": ["x"]})
    assert from_model.tokens[0] != "x" and "may not change ['tokens']" in errors[-1]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pattern": torch.rand(2, 4, 4), "tokens": list("abc")}, ValueError, "3 tokens for a pattern over 4"),
        ({"pattern": torch.rand(4, 5), "tokens": list("abcd")}, ValueError, "must be \\[heads, query, key\\]"),
        ({"pattern": -torch.rand(1, 3, 3), "tokens": list("abc")}, ValueError, "non-negative"),
        ({"pattern": torch.rand(1, 3, 3), "tokens": [1, 2, 3]}, TypeError, "tokens must be strings"),
        ({"pattern": torch.rand(1, 3, 3)}, ValueError, "needs its tokens"),
        ({"pattern": torch.rand(2, 3, 3), "tokens": list("abc"), "value_norms": torch.rand(3, 3)}, ValueError, "value_norms"),
        ({}, ValueError, "needs a model and a prompt"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(kwargs, error, match):
    with pytest.raises(error, match=match):
        AttentionPatterns(**kwargs)


def test_prompts_longer_than_the_context_point_to_pattern_tensors(random_model):
    with pytest.raises(ValueError, match="pattern="):
        AttentionPatterns(random_model, " the" * 300)


def test_twelve_heads_at_512_tokens_cost_under_a_megabyte():
    """What the browser receives to show a layer: the widget state, all thumbnails and the open head."""
    n = 512
    widget = AttentionPatterns(pattern=causal_patterns(12, n), tokens=[f" w{i}" for i in range(n)])
    state = widget.get_state()
    total = len(json.dumps({k: v for k, v in state.items()}).encode())
    for method, params in (("thumbnails", {}), ("pattern", {"head": 0})):
        reply, buffers = ask(widget, method, layer=0, weighting="attention", **params)
        assert reply["ok"]
        total += reply_bytes(reply, buffers)
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
