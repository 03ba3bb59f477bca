"""Explorer and link_views: one shared selection, the dictionary choice kept in step, the static preview."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.sae import SAEConfig, SAESet, build_sae
from interpwidgets.widgets.attention import AttentionPatterns
from interpwidgets.widgets.explorer import Explorer
from interpwidgets.widgets.feature_dashboard import FeatureDashboard
from interpwidgets.widgets.linking import link_views
from interpwidgets.widgets.token_features import TokenFeatures

PROMPT = "When Mary and John went to the store, John gave a drink to"
RESID0, RESID1, ATTN1 = "blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.1.hook_attn_out"


@pytest.fixture(scope="module")
def saes():
    make = lambda hook, seed: build_sae(  # noqa: E731
        SAEConfig(d_in=128, d_sae=32, architecture="topk", k=4, hook_name=hook), seed=seed)
    return SAESet.of([make(RESID0, 0), make(RESID1, 1), make(ATTN1, 2)])


@pytest.fixture
def explorer(random_model, saes):
    return Explorer(random_model, saes, PROMPT, hook=RESID1, feature=4, corpus=torch.zeros(2, 8, dtype=torch.long))


def test_parts_share_one_selection_and_start_on_the_same_feature(explorer):
    parts = explorer.views
    assert [isinstance(p, kind) for p, kind in zip(parts, (TokenFeatures, FeatureDashboard, AttentionPatterns))] == [True] * 3
    assert all(p.selection is explorer.selection for p in parts)
    assert (explorer.dashboard.hook, explorer.dashboard.feature) == (RESID1, 4)
    assert explorer.children[0].children == (explorer.token_features, explorer.dashboard)
    assert explorer.children[1] is explorer.attention


def test_choosing_a_dictionary_switches_the_other_view(explorer):
    explorer.token_features.hook = ATTN1
    assert explorer.dashboard.hook == ATTN1
    explorer.dashboard.hook = RESID0
    assert explorer.token_features.hook == RESID0


def test_link_views_follows_only_hooks_the_target_holds(random_model, saes):
    features = TokenFeatures(random_model, saes, PROMPT)
    dashboard = FeatureDashboard(random_model, saes[RESID0], corpus=torch.zeros(2, 8, dtype=torch.long))
    shared = link_views(features, dashboard)
    assert features.selection is dashboard.selection is shared
    features.hook = RESID1
    assert dashboard.hook == RESID0
    features.hook = RESID0
    assert dashboard.hook == RESID0 and features.hook == RESID0


def test_without_attention(random_model, saes):
    explorer = Explorer(random_model, saes, PROMPT, attention=False, corpus=torch.zeros(2, 8, dtype=torch.long))
    assert explorer.attention is None and len(explorer.children) == 1 and len(explorer.views) == 2


def test_static_preview_joins_the_parts(explorer):
    bundle = explorer._repr_mimebundle_()
    html = bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Token features \u00b7 resid_post1/4" in html and "Feature 4 \u00b7 resid_post1" in html
    assert "Attention patterns" in html and html.count('class="iw-static"') == 3


def test_by_default_both_feature_views_open_on_the_token_views_choice_and_share_the_corpus_density(random_model, saes):
    explorer = Explorer(random_model, saes, PROMPT, corpus=torch.zeros(2, 8, dtype=torch.long))
    tf = explorer.token_features
    assert tf.hook == RESID1  # the deepest residual dictionary, not the first given
    assert (explorer.dashboard.hook, explorer.dashboard.feature) == (tf.hook, tf.feature)
    assert float(tf.activations()[1:, tf.feature].max()) > 0
    assert tf.density(tf.feature)["over"] == "corpus"
    assert tf.density(tf.feature)["fraction"] == pytest.approx(float(explorer.dashboard.stats().density[tf.feature]))
