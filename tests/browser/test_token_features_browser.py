"""TokenFeatures in JupyterLab: tokens coloured by a feature with a legend, hover shows the kernel's values,
a click on a token lists the kernel's strongest features there, a click on a feature recolours, and the
steer button shows the kernel's predictions after steering; kernel errors appear in the widget; a second
view of the same widget follows it."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from harness import number, printed, texts, wait_idle

pytestmark = pytest.mark.browser

PROMPT = "When Mary and John went to the store, John gave a drink to"
HOOK = "blocks.1.hook_resid_post"
P = 6  # the token the test clicks
ALPHA = 30

CELLS = [
    dedent("""\
        import json
        from interpwidgets.models import build_teaching_model
        from interpwidgets.sae import SAEConfig, SAESet, build_sae
        from interpwidgets.widgets.token_features import TokenFeatures
        model = build_teaching_model(seed=0)
        saes = SAESet.of([build_sae(SAEConfig(d_in=128, d_sae=64, architecture="topk", k=6,
                                              hook_name=f"blocks.{layer}.hook_resid_post"), seed=layer) for layer in (0, 1)])"""),
    dedent(f"""\
        tf = TokenFeatures(model, saes, {PROMPT!r}, hook={HOOK!r})
        acts = tf.activations()
        tf.feature = int(acts.sum(0).argmax())
        tf"""),
    # what the kernel computes for what the test hovers and clicks
    dedent(f"""\
        values, indices = acts[{P}].topk(12)
        chips = indices[values > 0].tolist()
        G = chips[1]
        after = tf.intervened_logits({HOOK!r}, G, "steer", {ALPHA})[{P}].softmax(-1).topk(10).indices.tolist()
        expected = {{"F": tf.feature, "values": acts[:, tf.feature].tolist(), "chips": chips, "G": G,
                    "values_G": acts[:, G].tolist(), "after": [model.tokenizer.decode([i]) for i in after],
                    "n": len(tf.tokens)}}
        print("IW-EXPECTED", json.dumps(expected))"""),
    "tf  # the same widget displayed again",
]


@pytest.fixture(scope="module")
def notebook(notebook_page):
    return notebook_page("token_features", CELLS)


@pytest.fixture(scope="module")
def expected(notebook) -> dict:
    return printed(notebook.page, "IW-EXPECTED")


@pytest.fixture(scope="module")
def root(notebook, expected):
    root = notebook.page.locator(".iw-token-features").first
    root.locator(".iw-caption", has_text=f"feature {expected['F']} \u00b7 max").wait_for()
    wait_idle(root)
    return root


def hover_tooltip(notebook, root, index: int) -> str:
    root.locator(f".iw-text .iw-token[data-index='{index}']").hover()
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    return tooltip.inner_text()


def test_renders_tokens_coloured_with_a_legend(root, expected, screenshot):
    tokens = root.locator(".iw-text .iw-token")
    assert tokens.count() == expected["n"]
    assert texts(tokens)[:3] == ["<|endoftext|>", "When", " Mary"]  # tokens are text, markup-like ones too
    assert root.locator(".iw-legend-units").inner_text() == f"activation of {HOOK} #{expected['F']}"
    peak = max(range(expected["n"]), key=lambda i: expected["values"][i])
    assert "rgb(" in tokens.nth(peak).get_attribute("style")
    ticks = root.locator(".iw-legend-ticks > span").all_inner_texts()
    assert number(ticks[0]) == 0 and number(ticks[-1]) == pytest.approx(max(expected["values"]), rel=0.01)
    screenshot(root, "token_features")


def test_hover_shows_the_kernels_values(notebook, root, expected):
    peak = max(range(expected["n"]), key=lambda i: expected["values"][i])
    text = hover_tooltip(notebook, root, peak)
    shown = number(re.search(rf"#{expected['F']}: (\S+)", text).group(1))
    assert shown == pytest.approx(expected["values"][peak], rel=0.01, abs=1e-3)
    assert "strongest features here:" in text and f"#{expected['F']}" in text


def test_click_on_a_token_lists_the_kernels_features(root, expected):
    root.locator(f".iw-text .iw-token[data-index='{P}']").click()
    root.locator(".iw-token-panel .iw-section-title", has_text=f"Strongest features at {P} ").wait_for()
    wait_idle(root)
    chips = root.locator(".iw-token-panel .iw-feature-chip")
    assert [int(c) for c in chips.evaluate_all("els => els.map(e => e.dataset.feature)")] == expected["chips"]
    assert "iw-pinned" in root.locator(f".iw-text .iw-token[data-index='{P}']").get_attribute("class")


def test_click_on_a_feature_recolours_the_tokens(notebook, root, expected):
    g = expected["G"]
    root.locator(f".iw-feature-chip[data-feature='{g}']").click()
    root.locator(".iw-caption", has_text=f"feature {g} \u00b7").wait_for()
    wait_idle(root)
    assert root.locator(".iw-legend-units").inner_text() == f"activation of {HOOK} #{g}"
    text = hover_tooltip(notebook, root, P)
    assert number(re.search(rf"#{g}: (\S+)", text).group(1)) == pytest.approx(expected["values_G"][P], rel=0.01, abs=1e-3)


def test_steering_shows_the_kernels_predictions(root, expected, screenshot):
    root.locator("select[aria-label='action']").select_option("steer")
    root.locator(".iw-alpha").evaluate(f"el => {{ el.value = '{ALPHA}'; el.dispatchEvent(new Event('change')); }}")
    apply = root.locator(".iw-apply")
    assert apply.inner_text() == f"steer #{expected['G']} by {ALPHA} \u00b7 predict after token {P}"
    apply.click()
    root.locator(".iw-outcome-title", has_text=f"steer {HOOK} #{expected['G']} by {ALPHA}").wait_for()
    wait_idle(root)
    assert texts(root.locator(".iw-top-after .iw-token")) == expected["after"]
    assert root.locator(".iw-top-before .iw-bar-row").count() == 10
    screenshot(root, "token_features_steered")


def test_kernel_errors_are_shown_in_the_widget(root):
    root.evaluate("el => el.dispatchEvent(new CustomEvent('iw-request', "
                  "{detail: {method: 'activations', params: {hook: 'blocks.7.hook_resid_post', feature: 0}}}))")
    error = root.locator(".iw-error")
    error.wait_for(state="visible")
    assert "hook must be one of" in error.inner_text()


def test_a_second_view_of_the_widget_follows_the_same_state(notebook, root, expected):
    second = notebook.page.locator(".iw-token-features").nth(1)
    second.locator(".iw-caption", has_text=f"feature {expected['G']} \u00b7").wait_for()
    assert second.locator(".iw-legend-units").inner_text() == f"activation of {HOOK} #{expected['G']}"
    assert "iw-pinned" in second.locator(f".iw-text .iw-token[data-index='{P}']").get_attribute("class")
