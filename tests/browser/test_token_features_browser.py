"""TokenFeatures in JupyterLab: tokens coloured by a feature with a legend, hover shows the feature's values,
a click on a token lists its strongest features, a click on a feature recolours, and the steer button shows
the predictions after steering; the expected values are computed in the notebook from the model's hooks and
the SAE's weights, not by the widget. Kernel errors appear in the widget; a second view follows the first."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from harness import number, texts, wait_idle
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PROMPT = "When Mary and John went to the store, John gave a drink to"
HOOK, PLACE = "blocks.1.hook_resid_post", "resid_post1"
P = 6  # the token the test clicks
ALPHA = 30

CELLS = [
    dedent(f"""\
        import json
        import torch
        from interpwidgets.models import build_teaching_model
        from interpwidgets.sae import SAEConfig, SAESet, build_sae
        from interpwidgets.widgets.token_features import TokenFeatures
        model = build_teaching_model(seed=0)
        saes = SAESet.of([build_sae(SAEConfig(d_in=128, d_sae=64, architecture="topk", k=6,
                                              hook_name=f"blocks.{{layer}}.hook_resid_post"), seed=layer) for layer in (0, 1)])
        sae, tokens = saes[{HOOK!r}], model.to_tokens({PROMPT!r})
        with torch.no_grad():  # by hand: the SAE's encoding of the hook's activations
            _, cache = model.run_with_cache(tokens)
            acts = sae.encode(cache[{HOOK!r}][0])
        F = int(acts.sum(0).argmax())"""),
    dedent(f"""\
        tf = TokenFeatures(model, saes, {PROMPT!r}, hook={HOOK!r}, feature=F)
        tf"""),
    # what the test hovers and clicks, by hand: the token's strongest features, the logits with alpha * W_dec[G] added
    dedent(f"""\
        values, indices = acts[{P}].topk(12)
        chips = indices[values > 0].tolist()
        G = chips[1]
        steer = lambda x, hook: x + {ALPHA} * sae.W_dec[G]
        with torch.no_grad():
            after = model.run_with_hooks(tokens, fwd_hooks=[({HOOK!r}, steer)])[0, {P}].softmax(-1).topk(10).indices.tolist()
        expected = {{"F": F, "values": acts[:, F].tolist(), "chips": chips, "G": G, "values_G": acts[:, G].tolist(),
                    "after": [model.tokenizer.decode([i]) for i in after], "n": tokens.shape[1]}}
        print("IW-EXPECTED", json.dumps(expected))"""),
    "tf  # the same widget displayed again",
]


@pytest.fixture(scope="module")
def shown(widget_page):
    def ready(root):
        root.locator(".iw-caption", has_text=re.compile(r"\u00b7 max")).wait_for()
    return widget_page("token_features", CELLS, ".iw-token-features", ready=ready)


@pytest.fixture(scope="module")
def expected(shown) -> dict:
    return shown.expected


@pytest.fixture(scope="module")
def root(shown):
    return shown.root


def hover_tooltip(root, index: int) -> str:
    root.locator(f".iw-text .iw-token[data-index='{index}']").hover()
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    return tooltip.inner_text()


def test_renders_tokens_coloured_with_a_legend(root, expected, screenshot):
    tokens = root.locator(".iw-text .iw-token")
    assert tokens.count() == expected["n"]
    assert texts(tokens)[:3] == ["<|endoftext|>", "When", " Mary"]  # tokens are text, markup-like ones too
    assert root.locator(".iw-legend-units").inner_text() == f"activation of {PLACE}/{expected['F']}"
    assert root.locator("select[aria-label='dictionary'] option:checked").inner_text() == PLACE
    peak = max(range(expected["n"]), key=lambda i: expected["values"][i])
    assert "rgb(" in tokens.nth(peak).get_attribute("style")
    ticks = root.locator(".iw-legend-ticks > span").all_inner_texts()
    assert number(ticks[0]) == 0 and number(ticks[-1]) == pytest.approx(max(expected["values"]), rel=0.01)
    screenshot(root, "token_features")


def test_hover_shows_the_features_values(root, expected):
    peak = max(range(expected["n"]), key=lambda i: expected["values"][i])
    text = hover_tooltip(root, peak)
    shown = number(re.search(rf"{PLACE}/{expected['F']}: (\S+)", text).group(1))
    assert shown == pytest.approx(expected["values"][peak], rel=0.01, abs=1e-3)
    assert "strongest features here:" in text and f"#{expected['F']}" in text


def test_click_on_a_token_lists_its_strongest_features(root, expected):
    root.locator(f".iw-text .iw-token[data-index='{P}']").click()
    root.locator(".iw-token-panel .iw-section-title", has_text=f"Strongest features at {P} ").wait_for()
    wait_idle(root)
    chips = root.locator(".iw-token-panel .iw-feature-chip")
    assert [int(c) for c in chips.evaluate_all("els => els.map(e => e.dataset.feature)")] == expected["chips"]
    assert "iw-pinned" in root.locator(f".iw-text .iw-token[data-index='{P}']").get_attribute("class")


def test_click_on_a_feature_recolours_the_tokens(root, expected):
    g = expected["G"]
    root.locator(f".iw-feature-chip[data-feature='{g}']").click()
    root.locator(".iw-caption", has_text=f"feature {PLACE}/{g} \u00b7").wait_for()
    wait_idle(root)
    assert root.locator(".iw-legend-units").inner_text() == f"activation of {PLACE}/{g}"
    text = hover_tooltip(root, P)
    assert number(re.search(rf"{PLACE}/{g}: (\S+)", text).group(1)) == pytest.approx(expected["values_G"][P], rel=0.01, abs=1e-3)


def test_steering_shows_the_predictions_after_steering(root, expected, screenshot):
    root.locator("select[aria-label='action']").select_option("steer")
    root.locator(".iw-alpha").evaluate(f"el => {{ el.value = '{ALPHA}'; el.dispatchEvent(new Event('change')); }}")
    apply = root.locator(".iw-apply")
    assert apply.inner_text() == f"steer {PLACE}/{expected['G']} by {ALPHA} \u00b7 predict after token {P}"
    apply.click()
    root.locator(".iw-outcome-title", has_text=f"steer {PLACE}/{expected['G']} by {ALPHA}").wait_for()
    wait_idle(root)
    assert texts(root.locator(".iw-top-after .iw-token")) == expected["after"]
    assert root.locator(".iw-top-before .iw-bar-row").count() == 10
    screenshot(root, "token_features_steered")


def test_kernel_errors_are_shown_in_the_widget(root, expected):
    root.evaluate("el => el.dispatchEvent(new CustomEvent('iw-request', "
                  "{detail: {method: 'token', params: {position: 99}}}))")
    error = root.locator(".iw-error")
    error.wait_for(state="visible")
    assert f"position must be between 0 and {expected['n'] - 1}" in error.inner_text()


def test_an_alpha_out_of_range_or_empty_is_refused_naming_the_range_and_nothing_is_applied(shown, root, expected):
    """#16: 1e9 fell back to the previous alpha and applied it; an empty box ran as 0."""
    alpha, apply = root.locator(".iw-alpha"), root.locator(".iw-apply")
    outcome = root.locator(".iw-outcome").inner_text()
    for typed, complaint in (("1e9", "\u03b1 must be a number from \u221210000 to 10000, got 1e9"),
                             ("", "the box is empty or not a number")):
        alpha.fill(typed)
        alpha.press("Enter")
        root.locator(".iw-error", has_text=complaint).wait_for()
        assert "nothing is applied until it is fixed" in root.locator(".iw-error").inner_text()
        expect(alpha).to_have_value(typed)  # what was typed stays, marked, to fix
        assert alpha.get_attribute("aria-invalid") == "true" and apply.is_disabled()
        apply.dispatch_event("click")  # even a click that reaches it sends nothing
        wait_idle(root)
        assert root.locator(".iw-outcome").inner_text() == outcome
    alpha.fill(str(ALPHA))
    alpha.press("Enter")
    assert alpha.get_attribute("aria-invalid") == "false" and not apply.is_disabled()
    assert apply.inner_text().startswith(f"steer {PLACE}/{expected['G']} by {ALPHA}")


def test_enter_in_the_feature_box_commits_it_and_the_box_shows_the_feature_shown(root, expected):
    """#16: Enter did nothing, so the box could read 12 while the view showed another feature."""
    box = root.locator("input[aria-label='feature']")
    box.fill(str(expected["F"]))
    box.press("Enter")
    root.locator(".iw-caption", has_text=f"feature {PLACE}/{expected['F']} \u00b7").wait_for()
    wait_idle(root)
    assert root.locator(".iw-legend-units").inner_text() == f"activation of {PLACE}/{expected['F']}"
    box.fill("12")
    box.evaluate("el => el.blur()")  # leaving the box commits it too
    root.locator(".iw-caption", has_text=f"feature {PLACE}/12").wait_for()
    wait_idle(root)
    root.locator(f".iw-feature-chip[data-feature='{expected['G']}']").click()  # the view changes: the box follows
    root.locator(".iw-caption", has_text=f"feature {PLACE}/{expected['G']} \u00b7").wait_for()
    wait_idle(root)
    assert box.input_value() == str(expected["G"])


def test_the_caption_says_how_often_the_feature_fires_on_the_prompt(root, expected):
    active = sum(v > 0 for v in expected["values_G"][1:])
    caption = root.locator(".iw-caption").inner_text()
    assert f"fires on {active} of {expected['n'] - 1} tokens of this prompt" in caption
    dense = expected["n"] - 1 >= 10 and active / (expected["n"] - 1) > 0.3
    assert (root.locator(".iw-caption .iw-dense").count() == 1) == dense


def test_a_second_view_of_the_widget_follows_the_same_state(shown, expected):
    second = shown.notebook.page.locator(".iw-token-features").nth(1)
    second.locator(".iw-caption", has_text=f"feature {PLACE}/{expected['G']} \u00b7").wait_for()
    assert second.locator(".iw-legend-units").inner_text() == f"activation of {PLACE}/{expected['G']}"
    assert "iw-pinned" in second.locator(f".iw-text .iw-token[data-index='{P}']").get_attribute("class")
