"""`iw.sae.feature_stats` against a brute-force computation over the corpus (density, maxima, histograms,
top-activating contexts), and FeatureDashboard on its results: the feature request, given statistics, a
static preview that shows what was computed, navigation, request and trait checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpwidgets.sae import FeatureLabels, SAEConfig, SAESet, build_sae, feature_stats, top_activating
from interpwidgets.sae.activations import CORPUS_SEED
from interpwidgets.data.mixture import training_batch
from interpwidgets.widgets.feature_dashboard import FeatureDashboard
from interpwidgets.widgets.testing import ask, decode_array, decode_int32

RESID0, RESID2 = "blocks.0.hook_resid_post", "blocks.2.hook_resid_post"


@pytest.fixture(scope="module")
def saes():
    make = lambda hook, d_sae, seed: build_sae(  # noqa: E731
        SAEConfig(d_in=128, d_sae=d_sae, architecture="topk", k=4, hook_name=hook), seed=seed)
    return SAESet.of([make(RESID0, 96, 0), make(RESID2, 48, 1)])


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(1, 700, (12, 24), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def all_acts(random_model, saes, tokens):
    """Brute force: every feature's activation on every corpus token, {hook: [rows, seq, d_sae]}."""
    with torch.no_grad():
        _, cache = random_model.run_with_cache(tokens)
        return {hook: sae.encode(cache[hook]).float() for hook, sae in saes.items()}


@pytest.fixture(scope="module")
def dashboard(random_model, saes, tokens):
    return FeatureDashboard(random_model, saes, feature=5, corpus=tokens)


def active_feature(acts: torch.Tensor, rank: int = 0) -> int:
    """A feature active on many tokens (the `rank`-th most frequent)."""
    return int((acts > 0).sum((0, 1)).argsort(descending=True)[rank])


# ---- the engine function
def test_feature_statistics_match_brute_force(random_model, saes, tokens, all_acts):
    acts = all_acts[RESID0]
    stats = feature_stats(random_model, saes[RESID0], tokens, batch_size=5, bins=16)
    assert (stats.hook, stats.n_tokens, stats.d_sae) == (RESID0, tokens.numel(), 96)
    torch.testing.assert_close(stats.max, acts.amax(dim=(0, 1)).clamp_min(0))
    torch.testing.assert_close(stats.density, (acts > 0).float().mean((0, 1)))
    for feature in (active_feature(acts), active_feature(acts, 5)):
        values = acts[..., feature][acts[..., feature] > 0]
        expected = torch.histc(values, bins=16, min=0, max=float(values.max()))
        assert stats.histograms[feature].sum() == values.numel()
        # the same bins up to values that sit on a bin edge within float rounding
        assert (stats.histograms[feature] - expected.long()).abs().sum() <= 2


def test_examples_are_the_rows_with_the_highest_peaks_with_their_context(random_model, saes, tokens, all_acts):
    acts = all_acts[RESID0]
    stats = feature_stats(random_model, saes[RESID0], tokens, batch_size=5, n_examples=4, window=(5, 2))
    feature = active_feature(acts, 1)
    peaks = acts[..., feature].max(dim=1)
    expected_rows = [r for r in peaks.values.argsort(descending=True)[:4].tolist() if peaks.values[r] > 0]
    examples = stats.examples(feature)
    assert [e.row for e in examples] == expected_rows
    for e in examples:
        start = e.position - e.focus
        assert e.position == int(peaks.indices[e.row]) and e.activation == pytest.approx(float(peaks.values[e.row]))
        assert 0 <= e.focus <= 5 and len(e.str_tokens) == len(e.activations) <= 8
        np.testing.assert_allclose(e.activations, acts[e.row, start:start + len(e.activations), feature], rtol=1e-5, atol=1e-6)
        assert e.str_tokens == [random_model.tokenizer.decode([t]) for t in tokens[e.row, start:start + len(e.str_tokens)].tolist()]


def test_a_feature_that_never_fires_has_no_examples(random_model, saes, tokens):
    dead_sae = build_sae(saes[RESID0].cfg, seed=0)
    with torch.no_grad():
        dead_sae.b_enc[0] = -1e6  # feature 0 is never among the top k
    stats = feature_stats(random_model, dead_sae, tokens)
    assert stats.examples(0) == [] and stats.density[0] == 0 and stats.max[0] == 0 and stats.histograms[0].sum() == 0


def test_the_default_corpus_is_the_teaching_corpus_stream_of_the_one_corpus_seed(random_model, saes):
    """feature_stats and top_activating read the same held-out stream (seed CORPUS_SEED + 2), batch by batch."""
    stats = feature_stats(random_model, saes[RESID0], n_batches=2, batch_size=3, context_size=16)
    rows = torch.cat([training_batch(random_model.tokenizer, CORPUS_SEED + 2, step, 3, 16) for step in (0, 1)])
    assert stats.str_tokens == [[random_model.tokenizer.decode([t]) for t in row] for row in rows.tolist()]
    feature = int(stats.max.argmax())
    assert top_activating(random_model, saes[RESID0], feature, n_batches=2, batch_size=3, context_size=16) == stats.examples(feature)


def test_corpus_from_texts_and_bad_corpora(random_model, saes):
    stats = feature_stats(random_model, saes[RESID0], ["When Mary and John went to the store", "Mary gave a drink to John"],
                          context_size=6)
    assert len(stats.str_tokens[0]) == 6 and stats.str_tokens[0][0] == "<|endoftext|>"
    with pytest.raises(ValueError, match="lie in"):
        feature_stats(random_model, saes[RESID0], torch.full((2, 4), 10**6))
    with pytest.raises(TypeError):
        feature_stats(random_model, saes[RESID0], 42)
    with pytest.raises(ValueError, match="n_examples, bins and batch_size must be at least 1"):
        feature_stats(random_model, saes[RESID0], torch.zeros(2, 4, dtype=torch.long), bins=0)


# ---- the widget
def test_feature_request_sends_the_summary_as_arrays(random_model, dashboard, saes, all_acts):
    acts = all_acts[RESID2]
    feature = active_feature(acts)
    dashboard.show(feature, RESID2)
    ok, result = ask(dashboard, "feature")
    assert ok, result
    assert (result["hook"], result["feature"]) == (RESID2, feature)
    assert result["max"] == pytest.approx(float(acts[..., feature].max()), rel=1e-5)
    assert result["density"] == pytest.approx(float((acts[..., feature] > 0).float().mean()))
    examples = result["examples"]
    values, peaks = decode_array(examples["values"]), decode_int32(examples["peaks"])
    assert values.shape == (len(examples["tokens"]), max(len(t) for t in examples["tokens"]))
    for row, (tokens, peak) in enumerate(zip(examples["tokens"], peaks)):
        assert np.isnan(values[row, len(tokens):]).all()
        assert values[row, peak] == pytest.approx(np.nanmax(values[row]), rel=1e-3)
    assert values[0, peaks[0]] == pytest.approx(result["max"], rel=1e-3)
    assert decode_array(result["histogram"]).sum() == pytest.approx(float((acts[..., feature] > 0).sum()))
    direct = (saes[RESID2].W_dec[feature] @ random_model.W_U).detach()
    np.testing.assert_allclose(decode_array(result["logits"]["top"]["values"]), direct.topk(8).values, rtol=2e-3)
    np.testing.assert_allclose(decode_array(result["logits"]["bottom"]["values"]), direct.topk(8, largest=False).values,
                               rtol=2e-3)


def test_statistics_are_computed_when_a_dictionary_is_chosen_and_kept(random_model, saes, tokens, monkeypatch):
    widget = FeatureDashboard(random_model, saes, corpus=tokens)
    first = widget.stats()
    assert first.hook == RESID0
    widget.hook = RESID2
    kept = widget.stats(RESID2)
    monkeypatch.setattr("interpwidgets.widgets.feature_dashboard.feature_stats", None)  # no further computation
    widget.hook = RESID0
    assert widget.stats() is first and widget.stats(RESID2) is kept and ask(widget, "feature")[0]


def test_given_statistics_are_shown_without_a_corpus_pass(random_model, saes, tokens, monkeypatch):
    given = feature_stats(random_model, saes[RESID2], tokens)
    monkeypatch.setattr("interpwidgets.widgets.feature_dashboard.feature_stats", None)
    widget = FeatureDashboard(random_model, saes[RESID2], stats=given, feature=3)
    assert widget.stats() is given and ask(widget, "feature")[0]
    with pytest.raises(ValueError, match="belong to none of the SAEs"):
        FeatureDashboard(random_model, saes[RESID0], stats=given)


def test_static_preview_shows_the_computed_statistics_without_running_the_model(random_model, saes, tokens, all_acts,
                                                                                   monkeypatch):
    feature = active_feature(all_acts[RESID0])
    widget = FeatureDashboard(random_model, saes, feature=feature, corpus=tokens)
    monkeypatch.setattr(random_model, "forward", lambda *args, **kwargs: pytest.fail("the preview ran the model"))
    html = widget._repr_mimebundle_()[0]["text/html"]
    assert f"Feature {feature} \u00b7 resid_post0" in html and "density" in html and "top logits" in html
    assert "background:rgb(" in html and "<script" not in html


def test_show_switches_dictionary_and_feature(dashboard):
    dashboard.show(40, RESID2)
    assert (dashboard.hook, dashboard.feature) == (RESID2, 40)
    dashboard.show(90, RESID0)
    assert (dashboard.hook, dashboard.feature) == (RESID0, 90)
    dashboard.hook = RESID2  # 90 is out of range for 48 features
    assert dashboard.feature == 0
    with pytest.raises(Exception, match=r"feature must be an integer in \[0, 47\]"):
        dashboard.show(48)


@pytest.mark.parametrize("params", [{"hook": RESID2}, {"feature": 1}, {"n": 3}])
def test_the_feature_request_is_a_verb_and_refuses_parameters(dashboard, params):
    ok, error = ask(dashboard, "feature", **params)
    assert not ok and "unexpected parameters" in error


def test_front_end_may_change_only_feature_hook_and_follow(random_model, saes, tokens, monkeypatch):
    widget = FeatureDashboard(random_model, saes, feature=3, corpus=tokens)
    errors = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: errors.append(content["error"]))
    monkeypatch.setattr(widget, "send_state", lambda keys=None: None)
    widget.set_state({"feature": 7, "follow_selection": False})
    assert (widget.feature, widget.follow_selection) == (7, False) and not errors
    widget.set_state({"sizes": [1, 1]})
    widget.set_state({"feature": 96})
    assert widget.feature == 7 and len(errors) == 2 and "may not change ['sizes']" in errors[0]


def test_the_reply_marks_a_feature_dense_above_ten_percent_of_the_corpus(random_model, saes, tokens, all_acts):
    """#16: a feature firing on 87% of tokens was shown with nothing saying so; the reply now says whether it is dense."""
    acts = all_acts[RESID2]
    fractions = (acts > 0).float().mean(dim=(0, 1))
    dense, sparse = int(fractions.argmax()), int(torch.where(fractions > 0, fractions, 2.0).argmin())
    assert fractions[dense] > 0.1 >= fractions[sparse]
    widget = FeatureDashboard(random_model, saes, hook=RESID2, corpus=tokens)
    for feature, expected in ((dense, True), (sparse, False)):
        widget.feature = feature
        ok, result = ask(widget, "feature")
        firing = result["firing"]
        assert ok and (firing["over"], firing["dense"], firing["n_tokens"]) == ("corpus", expected, tokens.numel())
        assert firing["fraction"] == pytest.approx(float(fractions[feature]))
        assert firing["active"] == int((acts[..., feature] > 0).sum())
    assert "<b>dense</b>" not in widget._repr_mimebundle_()[0]["text/html"]
    widget.feature = dense
    assert "<b>dense</b>" in widget._repr_mimebundle_()[0]["text/html"]


def test_the_feature_reply_and_preview_carry_the_features_label(random_model, tokens):
    """The label the test gives feature 5 comes back with it (and in the preview title); an unlabelled one has None."""
    sae = build_sae(SAEConfig(d_in=128, d_sae=48, architecture="topk", k=4, hook_name=RESID2), seed=1)
    sae.labels = FeatureLabels(48, {5: '" Mary"/" John" -> " to"'})
    widget = FeatureDashboard(random_model, sae, feature=5, corpus=tokens)
    ok, result = ask(widget, "feature")
    assert ok and result["label"] == '" Mary"/" John" -> " to"'
    assert "Feature 5 \u00b7 resid_post2 \u00b7 &quot; Mary&quot;/&quot; John&quot; -&gt; &quot; to&quot;" in widget._static_html()
    widget.show(6)
    ok, result = ask(widget, "feature")
    assert ok and result["label"] is None
