"""FeatureDashboard and its corpus statistics: examples, histogram, density and logit effects against a
brute-force computation over the corpus; navigation, request and trait checks; the static preview."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpwidgets.sae import SAEConfig, SAESet, build_sae
from interpwidgets.widgets.testing import decode_array
from interpwidgets.widgets.feature_corpus import HISTOGRAM_BINS, FeatureCorpus, corpus_tokens
from interpwidgets.widgets.feature_dashboard import FeatureDashboard
from interpwidgets.widgets.testing import ask, decode_int32

RESID0, RESID2 = "blocks.0.hook_resid_post", "blocks.2.hook_resid_post"


@pytest.fixture(scope="module")
def saes():
    make = lambda hook, d_sae, seed: build_sae(  # noqa: E731
        SAEConfig(d_in=128, d_sae=d_sae, architecture="topk", k=4, hook_name=hook), seed=seed)
    return SAESet.of([make(RESID0, 96, 0), make(RESID2, 48, 1)])


@pytest.fixture(scope="module")
def tokens(random_model):
    return corpus_tokens(random_model, rows=12, seq=24)


@pytest.fixture(scope="module")
def all_acts(random_model, saes, tokens):
    """Brute force: every feature's activation on every corpus token, {hook: [rows, seq, d_sae]}."""
    with torch.no_grad():
        _, cache = random_model.run_with_cache(tokens)
    return {hook: sae.encode(cache[hook]).float() for hook, sae in saes.items()}


@pytest.fixture(scope="module")
def dashboard(random_model, saes, tokens):
    return FeatureDashboard(random_model, saes, 5, corpus=tokens)




def active_feature(acts: torch.Tensor, rank: int = 0) -> int:
    """A feature active on many tokens (the `rank`-th most frequent)."""
    return int((acts > 0).sum((0, 1)).argsort(descending=True)[rank])


def test_corpus_statistics_match_brute_force(random_model, saes, tokens, all_acts):
    stats = FeatureCorpus(random_model, saes[RESID0], tokens)
    acts = all_acts[RESID0]
    torch.testing.assert_close(stats.row_max, acts.max(dim=1).values.clamp_min(0))
    torch.testing.assert_close(stats.max, acts.amax(dim=(0, 1)).clamp_min(0))
    assert stats.active.tolist() == (acts > 0).sum((0, 1)).tolist()
    feature = active_feature(acts)
    assert stats.density(feature) == pytest.approx(float((acts[..., feature] > 0).float().mean()))
    values = acts[..., feature][acts[..., feature] > 0]
    expected = torch.histc(values, bins=HISTOGRAM_BINS, min=0, max=float(values.max()))
    assert stats.histograms[feature].sum() == values.numel()
    # same bins up to values that sit on a bin edge within float rounding
    assert (stats.histograms[feature] - expected.long()).abs().sum() <= 2


def test_examples_are_the_highest_peaks_with_their_context(random_model, saes, tokens, all_acts):
    stats = FeatureCorpus(random_model, saes[RESID0], tokens)
    acts = all_acts[RESID0]
    feature = active_feature(acts, 1)
    examples = stats.examples(feature, n=4, before=5, after=2)
    peaks = acts[..., feature].max(dim=1)
    expected_rows = [r for r in peaks.values.argsort(descending=True)[:4].tolist() if peaks.values[r] > 0]
    assert [e.row for e in examples] == expected_rows
    for e in examples:
        position = e.start + e.peak
        assert int(peaks.indices[e.row]) == position
        assert 0 <= e.peak <= 5 and len(e.tokens) == len(e.values) <= 8
        torch.testing.assert_close(e.values, acts[e.row, e.start:e.start + len(e.tokens), feature], atol=1e-5, rtol=1e-5)
        assert e.tokens == [random_model.tokenizer.decode([t]) for t in tokens[e.row, e.start:e.start + len(e.tokens)].tolist()]


def test_feature_request_sends_the_summary_as_arrays(random_model, dashboard, saes, all_acts):
    acts = all_acts[RESID2]
    feature = active_feature(acts)
    ok, result = ask(dashboard, "feature", hook=RESID2, feature=feature)
    assert ok, result
    assert result["max"] == pytest.approx(float(acts[..., feature].max()), rel=1e-5)
    assert result["density"] == pytest.approx(float((acts[..., feature] > 0).float().mean()))
    examples = result["examples"]
    values = decode_array(examples["values"])
    peaks = decode_int32(examples["peaks"])
    assert values.shape == (len(examples["tokens"]), max(len(t) for t in examples["tokens"]))
    for row, (tokens, peak) in enumerate(zip(examples["tokens"], peaks)):
        assert np.isnan(values[row, len(tokens):]).all()
        assert values[row, peak] == pytest.approx(np.nanmax(values[row]), rel=1e-3)
    assert values[0, peaks[0]] == pytest.approx(result["max"], rel=1e-3)
    assert decode_array(result["histogram"]).sum() == pytest.approx(float((acts[..., feature] > 0).sum()))
    direct = (saes[RESID2].W_dec[feature] @ random_model.W_U).detach()
    np.testing.assert_allclose(decode_array(result["logits"]["positive"]["values"]), direct.topk(8).values, rtol=2e-3)
    np.testing.assert_allclose(decode_array(result["logits"]["negative"]["values"]), direct.topk(8, largest=False).values,
                               rtol=2e-3)


def test_a_feature_that_never_fires_has_no_examples(random_model, saes, tokens):
    dead_sae = build_sae(saes[RESID0].cfg, seed=0)
    with torch.no_grad():
        dead_sae.b_enc[0] = -1e6  # feature 0 is never among the top k
    dashboard = FeatureDashboard(random_model, dead_sae, 0, corpus=tokens)
    ok, result = ask(dashboard, "feature", hook=RESID0, feature=0)
    assert ok and result["density"] == 0 and result["max"] == 0 and result["examples"]["tokens"] == []
    assert decode_array(result["histogram"]).sum() == 0


def test_show_switches_dictionary_and_feature(dashboard):
    dashboard.show(40, RESID2)
    assert (dashboard.hook, dashboard.feature) == (RESID2, 40)
    dashboard.show(90, RESID0)
    assert (dashboard.hook, dashboard.feature) == (RESID0, 90)
    dashboard.hook = RESID2  # 90 is out of range for 48 features
    assert dashboard.feature == 0
    with pytest.raises(Exception, match="feature must be between 0 and 47"):
        dashboard.show(48)


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"hook": "blocks.1.hook_resid_post", "feature": 0}, "hook must be one of"),
        ({"hook": RESID2, "feature": 48}, "feature must be between 0 and 47"),
        ({"hook": RESID2, "feature": -1}, "feature must be between"),
        ({"hook": RESID2, "feature": 1.5}, "feature must be an integer"),
        ({"hook": RESID2}, "feature must be an integer"),
        ({"hook": RESID2, "feature": 1, "n": 3}, "unexpected parameters"),
    ],
)
def test_bad_requests_are_refused(dashboard, params, complaint):
    ok, error = ask(dashboard, "feature", **params)
    assert not ok and complaint in error


def test_front_end_may_change_only_feature_hook_and_follow(random_model, saes, tokens, monkeypatch):
    widget = FeatureDashboard(random_model, saes, 3, corpus=tokens)
    errors = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: errors.append(content["error"]))
    monkeypatch.setattr(widget, "send_state", lambda keys=None: None)
    widget.set_state({"feature": 7, "follow_selection": False})
    assert (widget.feature, widget.follow_selection) == (7, False) and not errors
    widget.set_state({"sizes": [1, 1]})
    widget.set_state({"feature": 96})
    assert widget.feature == 7 and len(errors) == 2 and "may not change ['sizes']" in errors[0]


def test_corpus_from_texts_and_bad_corpora(random_model):
    rows = corpus_tokens(random_model, ["When Mary and John went to the store", "Mary gave a drink to John"], seq=6)
    assert rows.ndim == 2 and rows.shape[1] == 6 and int(rows[0, 0]) == random_model.tokenizer.bos_token_id
    with pytest.raises(ValueError, match="lie in"):
        corpus_tokens(random_model, torch.full((2, 4), 10**6))
    with pytest.raises(TypeError):
        corpus_tokens(random_model, 42)


def test_static_preview_shows_examples_and_logits(random_model, saes, tokens, all_acts):
    feature = active_feature(all_acts[RESID0])
    html = FeatureDashboard(random_model, saes, feature, corpus=tokens)._repr_mimebundle_()[0]["text/html"]
    assert f"Feature {feature}" in html and "density" in html and "positive logits" in html
    assert "background:rgb(" in html and "<script" not in html
