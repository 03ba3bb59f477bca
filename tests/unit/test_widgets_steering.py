"""Steering: the texts it shows are what a hand-written decoding loop writes with the scaled directions added by
the test's own hook; the browser writes scales and settings as traits (checked once, against read-only limits)
and sends the bare verb; sliders are added and removed; the static preview shows the last generation."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.sae import FeatureLabels, SAEConfig, SAESet, build_sae
from interpwidgets.widgets.static_html import esc
from interpwidgets.widgets.steering import MAX_ROWS, Steering
from interpwidgets.widgets.testing import ask

PROMPT = "When Mary and John went to the store,"
RESID1, RESID2 = "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"


@pytest.fixture(scope="module")
def saes():
    make = lambda hook, seed: build_sae(  # noqa: E731
        SAEConfig(d_in=128, d_sae=64, architecture="relu", hook_name=hook), seed=seed)
    return SAESet.of([make(RESID1, 0), make(RESID2, 1)])


@pytest.fixture
def widget(random_model, saes):
    return Steering(random_model, saes, PROMPT, features=[(RESID1, 3), 9], max_new_tokens=6)


def greedy(model, n_new: int, added: dict[str, torch.Tensor] | None = None) -> list[str]:
    """The greedy continuation of PROMPT written out: rerun the sequence with `added[hook]` added at each hook."""
    hooks = [(hook, lambda x, hook, v=vector: x + v) for hook, vector in (added or {}).items()]
    sequence, new = model.to_tokens(PROMPT), []
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        while len(new) < n_new:
            new.append(int(model(sequence)[0, -1].argmax()))
            sequence = torch.cat([sequence, sequence.new_tensor([[new[-1]]])], dim=1)
    return [model.tokenizer.decode([i]) for i in new]


def front_end_sets(widget: Steering, monkeypatch, **traits) -> list[str]:
    """Writes traits as the browser does; returns the error messages the widget sent back."""
    errors: list[str] = []
    monkeypatch.setattr(widget, "send_error", errors.append)
    monkeypatch.setattr(widget, "send_state", lambda keys=None: None)
    widget.set_state(traits)
    return errors


def test_a_slider_ends_where_its_direction_adds_twice_the_typical_activation_norm(random_model, widget, saes):
    """At scale `limit`, feature f adds limit * W_dec[f], whose norm is twice the mean norm of the activation at its
    hook over the prompt (measured here from a cache; the limit keeps 3 significant digits)."""
    assert [row["label"] for row in widget.rows] == [f"{RESID1} #3", f"{RESID1} #9"]
    assert [row["layer"] for row in widget.rows] == [1, 1] and widget.scales == [0.0, 0.0]
    with torch.no_grad():
        _, cache = random_model.run_with_cache(random_model.to_tokens(PROMPT), names_filter=[RESID1])
    typical = float(cache[RESID1][0].norm(dim=-1).mean())
    for row, feature in zip(widget.rows, (3, 9)):
        added = float((row["limit"] * saes[RESID1].W_dec[feature]).norm())
        assert added / typical == pytest.approx(2.0, rel=5e-3)


def test_with_zero_scales_both_texts_are_the_models_greedy_text(random_model, widget):
    ok, result = ask(widget, "generate")
    assert ok, result
    assert result["baseline"] == result["steered"] == greedy(random_model, 6)
    assert "no steering" in result["description"]


def test_the_steered_text_is_greedy_decoding_with_the_scaled_directions_added(random_model, widget, saes, monkeypatch):
    assert front_end_sets(widget, monkeypatch, scales=[4.0, -3.0]) == []
    ok, result = ask(widget, "generate")
    assert ok, result
    w_dec = saes[RESID1].W_dec.detach()
    assert result["steered"] == greedy(random_model, 6, {RESID1: 4.0 * w_dec[3] - 3.0 * w_dec[9]})
    assert result["baseline"] == greedy(random_model, 6) != result["steered"]
    assert f"{RESID1} #3 \u00d7 4 + {RESID1} #9 \u00d7 -3 \u00b7 greedy" == result["description"]


def test_generate_reads_the_traits_the_front_end_wrote(random_model, widget, monkeypatch):
    """One source of truth: the request is the bare verb, and what it generates follows the validated traits."""
    assert front_end_sets(widget, monkeypatch, max_new_tokens=3) == []
    ok, result = ask(widget, "generate")
    assert ok and result["baseline"] == greedy(random_model, 3)
    ok, error = ask(widget, "generate", scales=[0.0, 0.0], max_new_tokens=3)
    assert not ok and "unexpected parameters ['max_new_tokens', 'scales']" in error


def test_sampling_is_reproducible_by_seed(widget, monkeypatch):
    front_end_sets(widget, monkeypatch, scales=[3.0, 0.0], max_new_tokens=4, sampling="sample", temperature=2.0, seed=0)
    first, again = ask(widget, "generate")[1], ask(widget, "generate")[1]
    assert first == again and "sampled at T=2, seed 0" in first["description"]
    others = []
    for seed in (1, 2):
        front_end_sets(widget, monkeypatch, seed=seed)
        others.append(ask(widget, "generate")[1]["steered"])
    assert any(other != first["steered"] for other in others)


def test_the_limits_go_down_as_read_only_traits_and_are_what_the_traits_accept(widget, monkeypatch):
    assert widget.limits == {"max_new_tokens": [1, 64], "temperature": [0.05, 5.0], "seed": [0, 2**31 - 1]}
    assert widget.samplings == ["greedy", "sample"]
    for name, (low, high) in widget.limits.items():
        assert front_end_sets(widget, monkeypatch, **{name: high}) == [] and getattr(widget, name) == high
        assert front_end_sets(widget, monkeypatch, **{name: low}) == [] and getattr(widget, name) == low
    assert "may not change ['limits']" in front_end_sets(widget, monkeypatch, limits={})[0]


@pytest.mark.parametrize(
    ("traits", "complaint"),
    [
        ({"scales": [0.0]}, "scales needs one value per slider (2), got 1"),
        ({"scales": [1e6, 0.0]}, "must lie in"),
        ({"scales": [None, 0.0]}, "scales"),
        ({"max_new_tokens": 0}, "max_new_tokens must be between 1 and 64"),
        ({"max_new_tokens": 65}, "max_new_tokens must be between 1 and 64"),
        ({"sampling": "beam"}, "sampling"),
        ({"temperature": 0.0}, "temperature must be between 0.05 and 5.0"),
        ({"seed": -1}, "seed must be between 0 and 2147483647"),
        ({"rows": []}, "may not change ['rows']"),
    ],
)
def test_bad_front_end_writes_are_refused_and_change_nothing(widget, monkeypatch, traits, complaint):
    before = {name: getattr(widget, name) for name in ("scales", "max_new_tokens", "sampling", "temperature", "seed", "rows")}
    errors = front_end_sets(widget, monkeypatch, **traits)
    assert len(errors) == 1 and complaint in errors[0]
    assert {name: getattr(widget, name) for name in before} == before


def test_sliders_are_added_and_removed_from_the_front_end(random_model, saes):
    widget = Steering(random_model, saes, PROMPT)
    assert widget.rows == [] and ask(widget, "generate")[0]
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


def test_custom_directions_steer_as_a_hook_adding_them_does(random_model, saes):
    vector = torch.randn(128, generator=torch.Generator().manual_seed(0))
    widget = Steering(random_model, saes, PROMPT, directions={"random": (RESID2, vector)})
    limit = widget.rows[0]["limit"]
    assert widget.rows[0]["label"] == "random" and widget.rows[0]["feature"] is None and widget.rows[0]["layer"] == 2
    baseline, steered = widget.continuations([limit], max_new_tokens=4)
    assert baseline == greedy(random_model, 4) and steered == greedy(random_model, 4, {RESID2: limit * vector})
    assert widget.generate([limit], max_new_tokens=4)[1] == "".join(steered)
    with pytest.raises(ValueError, match="nonzero"):
        widget.add_direction("zero", RESID2, torch.zeros(128))
    with pytest.raises(ValueError, match="width"):
        widget.add_direction("short", RESID2, torch.ones(3))


def test_at_most_max_rows_sliders(random_model, saes):
    widget = Steering(random_model, saes, PROMPT, features=list(range(MAX_ROWS)), max_new_tokens=1)
    ok, error = ask(widget, "add", hook=RESID2, feature=1)
    assert not ok and f"at most {MAX_ROWS}" in error


def test_bad_add_requests_are_refused(widget):
    assert "hook must be one of" in ask(widget, "add", hook="blocks.0.hook_resid_post", feature=1)[1]
    assert "feature must be between 0 and 63" in ask(widget, "add", hook=RESID1, feature=64)[1]


def test_bad_construction_is_refused(random_model, saes):
    with pytest.raises(ValueError):
        Steering(random_model, saes, PROMPT, features=[(RESID1, 64)])
    with pytest.raises(ValueError, match="no dictionary reads"):
        Steering(random_model, saes, PROMPT, features=[("blocks.0.hook_resid_post", 1)])
    with pytest.raises(Exception, match="max_new_tokens must be between 1 and 64"):
        Steering(random_model, saes, PROMPT, max_new_tokens=100)


def test_the_static_preview_shows_the_last_generation_without_running_the_model(random_model, saes, monkeypatch):
    """The preview shows what the widget last generated (for the browser, or at construction), and builds it
    without a forward pass."""
    widget = Steering(random_model, saes, PROMPT, features=[5], max_new_tokens=3)
    limit = widget.rows[0]["limit"]
    front_end_sets(widget, monkeypatch, scales=[limit])
    shown = ask(widget, "generate")[1]
    passes = []
    handle = random_model.register_forward_pre_hook(lambda module, args: passes.append(1))
    try:
        html = widget._repr_mimebundle_()[0]["text/html"]
    finally:
        handle.remove()
    assert passes == []
    assert "without steering" in html and "steered" in html and esc(shown["description"]) in html
    assert esc("".join(shown["baseline"])) in html and esc("".join(shown["steered"])) in html
    fresh = Steering(random_model, saes, PROMPT, features=[5], max_new_tokens=3)
    assert esc("".join(greedy(random_model, 3))) in fresh._repr_mimebundle_()[0]["text/html"]


def test_feature_rows_say_how_often_the_feature_fires_on_the_prompt_or_the_corpus(random_model, saes):
    """#16: dense features are marked where they are shown; a row carries its feature's density, and what it is of."""
    from interpwidgets.sae import feature_stats

    tokens = random_model.to_tokens(PROMPT)
    with torch.no_grad():
        _, cache = random_model.run_with_cache(tokens)
        acts = saes[RESID1].encode(cache[RESID1][0])
    widget = Steering(random_model, saes, PROMPT, features=[(RESID1, 3)],
                      directions={"mine": (RESID2, torch.ones(128))})
    firing = widget.rows[0]["firing"]
    assert (firing["over"], firing["n_tokens"]) == ("prompt", tokens.shape[1] - 1)  # BOS not counted
    assert firing["active"] == int((acts[1:, 3] > 0).sum()) and not firing["dense"]  # too short a prompt to judge
    assert widget.rows[1]["firing"] is None  # a user's direction has no density
    rows = tokens.repeat(3, 1)
    widget = Steering(random_model, saes, PROMPT, features=[(RESID1, 3)],
                      stats=feature_stats(random_model, saes[RESID1], rows, progress=False))
    firing = widget.rows[0]["firing"]
    assert (firing["over"], firing["n_tokens"]) == ("corpus", rows.numel())
    assert firing["fraction"] == pytest.approx(float((acts[:, 3] > 0).float().mean()))
    assert firing["dense"] == (firing["fraction"] > 0.1)


def test_feature_rows_carry_the_features_label(random_model):
    """The label the test gives feature 3 goes with its row (and into the preview); feature 9 has none."""
    sae = build_sae(SAEConfig(d_in=128, d_sae=64, architecture="relu", hook_name=RESID1), seed=0)
    sae.labels = FeatureLabels(64, {3: "after \" to\""})
    widget = Steering(random_model, sae, PROMPT, features=[3, 9], max_new_tokens=2)
    assert [row["clerp"] for row in widget.rows] == ['after " to"', None]
    assert esc(f'{RESID1} #3 after " to"') in widget._static_html()
