"""Explorer in JupyterLab: TokenFeatures, FeatureDashboard and AttentionPatterns linked by one selection.
Clicking a feature in TokenFeatures opens it in the dashboard (with its maximum over the corpus) and moves the
attention view to its layer; stepping in the dashboard recolours the tokens; choosing another SAE switches
the dashboard through the kernel-side link. Expected values are computed in the notebook from the hooks."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from harness import number, wait_idle

pytestmark = pytest.mark.browser

PROMPT = "When Mary and John went to the store, John gave a drink to"
RESID0, RESID2 = "blocks.0.hook_resid_post", "blocks.2.hook_resid_post"
P = 4

CELLS = [
    dedent("""\
        import json
        import torch
        from interpwidgets.models import build_teaching_model
        from interpwidgets.sae import SAEConfig, SAESet, build_sae
        from interpwidgets.widgets.explorer import Explorer
        model = build_teaching_model(seed=0)
        saes = SAESet.of([build_sae(SAEConfig(d_in=128, d_sae=48, architecture="topk", k=6,
                                              hook_name=f"blocks.{layer}.hook_resid_post"), seed=layer) for layer in (0, 2)])
        corpus = torch.randint(1, model.cfg.d_vocab, (12, 24), generator=torch.Generator().manual_seed(0))"""),
    dedent(f"""\
        explorer = Explorer(model, saes, {PROMPT!r}, hook={RESID2!r}, feature=0, corpus=corpus)
        explorer"""),
    # by hand: the clicked token's strongest features on the prompt, every feature's maximum over the corpus
    dedent(f"""\
        with torch.no_grad():
            _, on_prompt = model.run_with_cache(model.to_tokens({PROMPT!r}))
            _, on_corpus = model.run_with_cache(corpus)
            values, indices = saes[{RESID2!r}].encode(on_prompt[{RESID2!r}][0, {P}]).topk(12)
            maxima = {{hook: sae.encode(on_corpus[hook]).amax(dim=(0, 1)).clamp_min(0).tolist() for hook, sae in saes.items()}}
        chips = [i for i in indices[values > 0].tolist() if i < 47 and i != 0]
        expected = {{"G": chips[0], "chips": indices[values > 0].tolist(), "max": maxima}}
        print("IW-EXPECTED", json.dumps(expected))"""),
]


@pytest.fixture(scope="module")
def shown(widget_page):
    return widget_page("explorer", CELLS, ".iw-token-features",
                       ready=lambda root: root.locator(".iw-caption", has_text="feature resid_post2/0 \u00b7").wait_for())


@pytest.fixture(scope="module")
def expected(shown) -> dict:
    return shown.expected


@pytest.fixture(scope="module")
def views(shown):
    page = shown.notebook.page
    tf, dash, attention = shown.root, page.locator(".iw-dashboard").first, page.locator(".iw-attention").first
    dash.locator(".iw-dash-title", has_text=re.compile(r"^Feature 0$")).wait_for()
    attention.locator(".iw-caption", has_text="L0H0:").wait_for()
    for root in (tf, dash, attention):
        wait_idle(root)
    return tf, dash, attention


def test_renders_the_three_linked_views(shown, views, screenshot):
    tf, dash, _ = views
    assert tf.locator("select[aria-label='dictionary']").input_value() == RESID2
    assert "resid_post2" in dash.locator(".iw-dash-header").inner_text()
    shown.notebook.page.set_viewport_size({"width": 1400, "height": 1700})  # room for all three views
    screenshot(shown.notebook.page.locator(".widget-vbox").first, "explorer")


def test_a_feature_click_opens_it_in_the_dashboard_and_the_attention_layer(views, expected):
    tf, dash, attention = views
    g = expected["G"]
    tf.locator(f".iw-text .iw-token[data-index='{P}']").click()
    tf.locator(".iw-token-panel .iw-feature-chip").first.wait_for()
    chips = tf.locator(".iw-token-panel .iw-feature-chip").evaluate_all("els => els.map(e => Number(e.dataset.feature))")
    assert chips == expected["chips"]
    tf.locator(f".iw-feature-chip[data-feature='{g}']").click()
    dash.locator(".iw-dash-title", has_text=re.compile(rf"^Feature {g}$")).wait_for()
    wait_idle(dash)
    assert number(dash.locator(".iw-max").inner_text()) == pytest.approx(expected["max"][RESID2][g], rel=0.01)
    attention.locator(".iw-caption", has_text="L2H0:").wait_for()
    tf.locator(".iw-caption", has_text=f"feature resid_post2/{g} \u00b7").wait_for()


def test_stepping_in_the_dashboard_recolours_the_tokens(views, expected):
    tf, dash, _ = views
    g = expected["G"]
    dash.locator(".iw-next").click()
    dash.locator(".iw-dash-title", has_text=re.compile(rf"^Feature {g + 1}$")).wait_for()
    tf.locator(".iw-caption", has_text=f"feature resid_post2/{g + 1} \u00b7").wait_for()
    wait_idle(tf)
    assert tf.locator(".iw-legend-units").inner_text() == f"activation of resid_post2/{g + 1}"


def test_choosing_another_sae_switches_the_dashboard_through_the_kernel(views, expected):
    tf, dash, attention = views
    g = expected["G"] + 1
    tf.locator("select[aria-label='dictionary']").select_option(RESID0)
    dash.locator(".iw-dash-header", has_text="resid_post0").wait_for()
    wait_idle(dash)
    assert dash.locator("select[aria-label='dictionary']").input_value() == RESID0
    assert number(dash.locator(".iw-max").inner_text()) == pytest.approx(expected["max"][RESID0][g], rel=0.01, abs=1e-3)
    attention.locator(".iw-caption", has_text="L0H0:").wait_for()
