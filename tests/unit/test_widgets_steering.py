"""Steering: reproducible generation with and without steering, sliders added and removed, request and
trait checks, and the static preview."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.interventions import steer
from interpwidgets.sae import SAEConfig, SAESet, build_sae
from interpwidgets.widgets.feature_data import prompt_tokens
from interpwidgets.widgets.testing import ask
from interpwidgets.widgets.generation import generate
from interpwidgets.widgets.static_html import esc
from interpwidgets.widgets.steering import MAX_ROWS, Steering

PROMPT = "When Mary and John went to the store,"
RESID1, RESID2 = "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"
SETTINGS = {"max_new_tokens": 6, "sampling": "greedy", "temperature": 1.0, "seed": 0}


@pytest.fixture(scope="module")
def saes():
    make = lambda hook, seed: build_sae(  # noqa: E731
        SAEConfig(d_in=128, d_sae=64, architecture="relu", hook_name=hook), seed=seed)
    return SAESet.of([make(RESID1, 0), make(RESID2, 1)])


@pytest.fixture(scope="module")
def widget(random_model, saes):
    return Steering(random_model, saes, PROMPT, features=[(RESID1, 3), 9], max_new_tokens=6)




def text(model, ids: list[int]) -> list[str]:
    return [model.tokenizer.decode([i]) for i in ids]


def test_rows_and_slider_ranges(random_model, widget, saes):
    assert [row["label"] for row in widget.rows] == [f"{RESID1} #3", f"{RESID1} #9"]
    assert widget.scales == [0.0, 0.0]
    with torch.no_grad():
        _, cache = random_model.run_with_cache(prompt_tokens(random_model, PROMPT))
    typical = float(cache[RESID1].norm(dim=-1).mean())
    for row, feature in zip(widget.rows, (3, 9)):
        assert row["limit"] == pytest.approx(2 * typical / float(saes[RESID1].W_dec[feature].norm()), rel=2e-3)


def test_generate_with_zero_scales_leaves_the_text_alone(random_model, widget):
    ok, result = ask(widget, "generate", scales=[0, 0], **SETTINGS)
    assert ok, result
    expected = generate(random_model, prompt_tokens(random_model, PROMPT), 6)
    assert result["baseline"] == result["steered"] == text(random_model, expected)
    assert "no steering" in result["description"]


def test_steered_text_is_generation_under_the_summed_steering(random_model, widget, saes):
    scales = [4.0, -3.0]
    ok, result = ask(widget, "generate", scales=scales, **SETTINGS)
    assert ok, result
    w_dec = saes[RESID1].W_dec.detach()
    edit = steer(random_model, RESID1, 4.0 * w_dec[3] - 3.0 * w_dec[9], 1.0)
    expected = generate(random_model, prompt_tokens(random_model, PROMPT), 6, edit)
    assert result["steered"] == text(random_model, expected)
    assert result["steered"] != result["baseline"]
    assert f"{RESID1} #3 \u00d7 4" in result["description"]


def test_sampling_is_reproducible_by_seed(random_model, widget):
    sample = {**SETTINGS, "max_new_tokens": 4, "sampling": "sample", "temperature": 2.0}
    first = ask(widget, "generate", scales=[3.0, 0], **sample)[1]
    again = ask(widget, "generate", scales=[3.0, 0], **sample)[1]
    assert first == again
    others = [ask(widget, "generate", scales=[3.0, 0], **{**sample, "seed": seed})[1]["steered"] for seed in (1, 2)]
    assert any(other != first["steered"] for other in others)


def test_generation_stops_at_the_requested_length(random_model):
    tokens = prompt_tokens(random_model, PROMPT)
    assert len(generate(random_model, tokens, 3)) <= 3
    with pytest.raises(ValueError, match="temperature"):
        generate(random_model, tokens, 3, temperature=-1)


def test_sliders_are_added_and_removed_from_the_front_end(random_model, saes):
    widget = Steering(random_model, saes, PROMPT)
    assert widget.rows == [] and ask(widget, "generate", scales=[], **SETTINGS)[0]
    ok, _ = ask(widget, "add", hook=RESID2, feature=5)
    assert ok and [r["label"] for r in widget.rows] == [f"{RESID2} #5"] and widget.scales == [0.0]
    ok, error = ask(widget, "add", hook=RESID2, feature=5)
    assert not ok and "already has a slider" in error
    widget.scales = [1.5]
    ask(widget, "add", hook=RESID1, feature=7)
    assert widget.scales == [1.5, 0.0]
    ok, _ = ask(widget, "remove", index=0)
    assert ok and [r["label"] for r in widget.rows] == [f"{RESID1} #7"] and widget.scales == [0.0]
    assert not ask(widget, "remove", index=1)[0]


def test_custom_directions(random_model, saes):
    vector = torch.randn(128, generator=torch.Generator().manual_seed(0))
    widget = Steering(random_model, saes, PROMPT, directions={"random": (RESID2, vector)})
    assert widget.rows[0]["label"] == "random" and widget.rows[0]["feature"] is None
    baseline, steered = widget.generate([widget.rows[0]["limit"]], max_new_tokens=4)
    expected = generate(random_model, prompt_tokens(random_model, PROMPT), 4,
                        steer(random_model, RESID2, vector, widget.rows[0]["limit"]))
    assert steered == random_model.tokenizer.decode(expected)
    with pytest.raises(ValueError, match="nonzero"):
        widget.add_direction("zero", RESID2, torch.zeros(128))
    with pytest.raises(ValueError, match="width"):
        widget.add_direction("short", RESID2, torch.ones(3))


def test_at_most_max_rows_sliders(random_model, saes):
    widget = Steering(random_model, saes, PROMPT, features=list(range(MAX_ROWS)))
    ok, error = ask(widget, "add", hook=RESID2, feature=1)
    assert not ok and f"at most {MAX_ROWS}" in error


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({**SETTINGS, "scales": [0]}, "scales must be a list of 2"),
        ({**SETTINGS, "scales": "0,0"}, "scales must be a list of 2"),
        ({**SETTINGS, "scales": [1e6, 0]}, "scale must be between"),
        ({**SETTINGS, "scales": [None, 0]}, "scale must be a finite"),
        ({**SETTINGS, "scales": [0, 0], "max_new_tokens": 0}, "max_new_tokens must be between 1 and 64"),
        ({**SETTINGS, "scales": [0, 0], "max_new_tokens": 65}, "max_new_tokens must be between 1 and 64"),
        ({**SETTINGS, "scales": [0, 0], "sampling": "beam"}, "sampling must be one of"),
        ({**SETTINGS, "scales": [0, 0], "temperature": 0}, "temperature must be between"),
        ({**SETTINGS, "scales": [0, 0], "seed": -1}, "seed must be between"),
        ({"scales": [0, 0]}, "max_new_tokens must be an integer"),
        ({**SETTINGS, "scales": [0, 0], "prompt": "x"}, "unexpected parameters"),
    ],
)
def test_bad_generate_requests_are_refused(widget, params, complaint):
    ok, error = ask(widget, "generate", **params)
    assert not ok and complaint in error


def test_bad_add_requests_are_refused(widget):
    assert "hook must be one of" in ask(widget, "add", hook="blocks.0.hook_resid_post", feature=1)[1]
    assert "feature must be between 0 and 63" in ask(widget, "add", hook=RESID1, feature=64)[1]


def test_trait_checks(random_model, saes, monkeypatch):
    widget = Steering(random_model, saes, PROMPT, features=[3, 9], max_new_tokens=6)
    errors = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: errors.append(content["error"]))
    monkeypatch.setattr(widget, "send_state", lambda keys=None: None)
    widget.set_state({"scales": [1.0]})
    widget.set_state({"scales": [widget.rows[0]["limit"] * 2, 0.0]})
    widget.set_state({"max_new_tokens": 500})
    widget.set_state({"rows": []})
    assert widget.scales == [0.0, 0.0] and widget.max_new_tokens == 6 and len(widget.rows) == 2
    assert len(errors) == 4
    widget.set_state({"scales": [1.0, -1.0], "seed": 5, "sampling": "sample"})
    assert (widget.scales, widget.seed, widget.sampling) == ([1.0, -1.0], 5, "sample")
    with pytest.raises(ValueError):
        Steering(random_model, saes, PROMPT, features=[(RESID1, 64)])
    with pytest.raises(ValueError, match="no dictionary reads"):
        Steering(random_model, saes, PROMPT, features=[("blocks.0.hook_resid_post", 1)])


def test_static_preview_shows_both_texts(random_model, saes):
    widget = Steering(random_model, saes, PROMPT, features=[5], max_new_tokens=3)
    widget.scales = [widget.rows[0]["limit"]]
    baseline, steered = widget.generate()
    html = widget._repr_mimebundle_()[0]["text/html"]
    assert "without steering" in html and "steered" in html and f"{RESID1} #5" in html
    assert esc(baseline) in html and esc(steered) in html
