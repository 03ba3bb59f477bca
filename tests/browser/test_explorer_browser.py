"""Explorer in JupyterLab: TokenFeatures, FeatureDashboard and AttentionPatterns linked by one selection.
Clicking a feature in TokenFeatures opens it in the dashboard (with the kernel's numbers) and moves the
attention view to its layer; stepping in the dashboard recolours the tokens; choosing another SAE switches
the dashboard through the kernel-side link."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from harness import number, printed, wait_idle

pytestmark = pytest.mark.browser

PROMPT = "When Mary and John went to the store, John gave a drink to"
RESID0, RESID2 = "blocks.0.hook_resid_post", "blocks.2.hook_resid_post"
P = 4

CELLS = [
    dedent("""\
        import json
        from interpwidgets.models import build_teaching_model
        from interpwidgets.sae import SAEConfig, SAESet, build_sae
        from interpwidgets.widgets.explorer import Explorer
        from interpwidgets.widgets.feature_corpus import corpus_tokens
        model = build_teaching_model(seed=0)
        saes = SAESet.of([build_sae(SAEConfig(d_in=128, d_sae=48, architecture="topk", k=6,
                                              hook_name=f"blocks.{layer}.hook_resid_post"), seed=layer) for layer in (0, 2)])"""),
    dedent(f"""\
        explorer = Explorer(model, saes, {PROMPT!r}, hook={RESID2!r}, corpus=corpus_tokens(model, rows=12, seq=24))
        explorer"""),
    dedent(f"""\
        tf, dash = explorer.token_features, explorer.dashboard
        values, indices = tf.activations({RESID2!r})[{P}].topk(12)
        chips = [i for i in indices[values > 0].tolist() if i < 47 and i != 0]
        G = chips[0]
        expected = {{"G": G, "chips": indices[values > 0].tolist(),
                    "max": {{hook: [float(m) for m in dash.stats(hook).max] for hook in ({RESID0!r}, {RESID2!r})}}}}
        print("IW-EXPECTED", json.dumps(expected))"""),
]


@pytest.fixture(scope="module")
def notebook(notebook_page):
    return notebook_page("explorer", CELLS)


@pytest.fixture(scope="module")
def expected(notebook) -> dict:
    return printed(notebook.page, "IW-EXPECTED")


@pytest.fixture(scope="module")
def views(notebook, expected):
    page = notebook.page
    tf, dash, attention = page.locator(".iw-token-features").first, page.locator(".iw-dashboard").first, page.locator(".iw-attention").first
    tf.locator(".iw-caption", has_text="feature 0 \u00b7").wait_for()
    dash.locator(".iw-dash-title", has_text=re.compile(r"^Feature 0$")).wait_for()
    attention.locator(".iw-caption", has_text="L0H0:").wait_for()
    for root in (tf, dash, attention):
        wait_idle(root)
    return tf, dash, attention


def test_renders_the_three_linked_views(notebook, views, screenshot):
    tf, dash, _ = views
    assert tf.locator("select[aria-label='dictionary']").input_value() == RESID2
    assert RESID2 in dash.locator(".iw-dash-header").inner_text()
    notebook.page.set_viewport_size({"width": 1400, "height": 1700})  # room for all three views
    screenshot(notebook.page.locator(".widget-vbox").first, "explorer")


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
    tf.locator(".iw-caption", has_text=f"feature {g} \u00b7").wait_for()


def test_stepping_in_the_dashboard_recolours_the_tokens(views, expected):
    tf, dash, _ = views
    g = expected["G"]
    dash.locator(".iw-next").click()
    dash.locator(".iw-dash-title", has_text=re.compile(rf"^Feature {g + 1}$")).wait_for()
    tf.locator(".iw-caption", has_text=f"feature {g + 1} \u00b7").wait_for()
    wait_idle(tf)
    assert tf.locator(".iw-legend-units").inner_text() == f"activation of {RESID2} #{g + 1}"


def test_choosing_another_sae_switches_the_dashboard_through_the_kernel(views, expected):
    tf, dash, attention = views
    g = expected["G"] + 1
    tf.locator("select[aria-label='dictionary']").select_option(RESID0)
    dash.locator(".iw-dash-header", has_text=RESID0).wait_for()
    wait_idle(dash)
    assert dash.locator("select[aria-label='dictionary']").input_value() == RESID0
    assert number(dash.locator(".iw-max").inner_text()) == pytest.approx(expected["max"][RESID0][g], rel=0.01, abs=1e-3)
    attention.locator(".iw-caption", has_text="L0H0:").wait_for()
