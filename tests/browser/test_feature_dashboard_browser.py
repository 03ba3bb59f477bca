"""FeatureDashboard in JupyterLab: renders the kernel's examples, histogram, density and logit effects; hover
shows values; prev/next and jumping to a feature fetch from the kernel and redraw; errors appear in the widget."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from harness import number, printed, texts, wait_idle

pytestmark = pytest.mark.browser

HOOK = "blocks.1.hook_resid_post"

CELLS = [
    dedent("""\
        import json
        from interpwidgets.models import build_teaching_model
        from interpwidgets.sae import SAEConfig, build_sae
        from interpwidgets.widgets.feature_corpus import corpus_tokens
        from interpwidgets.widgets.feature_dashboard import AFTER, BEFORE, N_EXAMPLES, FeatureDashboard
        from interpwidgets.widgets.feature_data import logit_effects
        model = build_teaching_model(seed=0)
        sae = build_sae(SAEConfig(d_in=128, d_sae=64, architecture="topk", k=6, hook_name="blocks.1.hook_resid_post"), seed=1)
        corpus = corpus_tokens(model, rows=16, seq=32)"""),
    dedent("""\
        dash = FeatureDashboard(model, sae, corpus=corpus)
        stats = dash.stats()
        ranked = stats.active[:63].argsort(descending=True).tolist()
        dash.feature = ranked[0]
        dash"""),
    # the kernel's own numbers for the features the test visits
    dedent("""\
        def facts(f):
            examples = stats.examples(f, N_EXAMPLES, BEFORE, AFTER)
            return {"density": stats.density(f), "max": float(stats.max[f]), "n_examples": len(examples),
                    "first_tokens": examples[0].tokens, "first_values": examples[0].values.tolist(),
                    "peak": examples[0].peak, "hist": stats.histograms[f].tolist(),
                    "positive": [t for t, _ in logit_effects(model, sae, f, 8)["positive"]]}
        F = ranked[0]
        J = next(f for f in ranked[1:] if f != F + 1)
        expected = {"F": F, "J": J, "facts": facts(F), "next": facts(F + 1) if stats.active[F + 1] else None,
                    "jump": facts(J), "n_tokens": stats.n_tokens}
        print("IW-EXPECTED", json.dumps(expected))"""),
]


@pytest.fixture(scope="module")
def notebook(notebook_page):
    return notebook_page("feature_dashboard", CELLS)


@pytest.fixture(scope="module")
def expected(notebook) -> dict:
    return printed(notebook.page, "IW-EXPECTED")


@pytest.fixture(scope="module")
def root(notebook, expected):
    root = notebook.page.locator(".iw-dashboard").first
    wait_for_feature(root, expected["F"])
    return root


def wait_for_feature(root, feature: int) -> None:
    root.locator(".iw-dash-title", has_text=re.compile(rf"^Feature {feature}$")).wait_for()
    wait_idle(root)


def check_summary(root, facts: dict) -> None:
    assert number(root.locator(".iw-density").inner_text().removeprefix("density ")) == pytest.approx(
        facts["density"] * 100, rel=0.01)
    assert number(root.locator(".iw-max").inner_text()) == pytest.approx(facts["max"], rel=0.01)
    assert root.locator(".iw-example").count() == facts["n_examples"]
    assert texts(root.locator(".iw-example").first.locator(".iw-token")) == facts["first_tokens"]
    assert texts(root.locator(".iw-positive .iw-token")) == facts["positive"]


def test_renders_the_kernels_summary(root, expected, screenshot):
    facts = expected["facts"]
    check_summary(root, facts)
    assert f"of {expected['n_tokens']} tokens" in root.locator(".iw-dash-header").inner_text()
    assert root.locator(".iw-legend-units").inner_text() == f"activation of {HOOK} #{expected['F']}"
    assert root.locator(".iw-negative .iw-bar-row").count() == 8
    screenshot(root, "feature_dashboard")


def test_hover_shows_example_and_histogram_values(notebook, root, expected):
    facts = expected["facts"]
    first = root.locator(".iw-example").first
    first.locator(f".iw-token[data-index='{facts['peak']}']").hover()
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    value = number(re.search(r"activation: (\S+)", tooltip.inner_text()).group(1))
    assert value == pytest.approx(facts["first_values"][facts["peak"]], rel=0.01) and "(peak)" in tooltip.inner_text()
    hist = facts["hist"]
    tallest = max(range(len(hist)), key=hist.__getitem__)
    box = root.locator(".iw-histogram").bounding_box()
    notebook.page.mouse.move(box["x"] + (tallest + 0.5) * box["width"] / len(hist), box["y"] + box["height"] - 3)
    root.locator(".iw-tooltip", has_text="tokens:").wait_for(state="visible")
    assert number(re.search(r"tokens: (\S+)", tooltip.inner_text()).group(1)) == hist[tallest]


def test_next_fetches_the_next_feature(root, expected):
    root.locator(".iw-next").click()
    wait_for_feature(root, expected["F"] + 1)
    if expected["next"] is None:
        assert root.locator(".iw-examples").inner_text() == "never active on the corpus"
    else:
        check_summary(root, expected["next"])
    root.locator(".iw-prev").click()
    wait_for_feature(root, expected["F"])
    check_summary(root, expected["facts"])


def test_jumping_to_a_feature(root, expected):
    root.locator("input[aria-label='feature']").evaluate(
        f"el => {{ el.value = '{expected['J']}'; el.dispatchEvent(new Event('change')); }}")
    wait_for_feature(root, expected["J"])
    check_summary(root, expected["jump"])


def test_bad_input_and_kernel_errors_are_shown(root):
    root.locator("input[aria-label='feature']").evaluate("el => { el.value = '64'; el.dispatchEvent(new Event('change')); }")
    error = root.locator(".iw-error")
    error.wait_for(state="visible")
    assert "feature must be an integer from 0 to 63" in error.inner_text()
    root.evaluate("el => el.dispatchEvent(new CustomEvent('iw-request', "
                  f"{{detail: {{method: 'feature', params: {{hook: '{HOOK}', feature: 64}}}}}}))")
    root.locator(".iw-error", has_text="feature must be between 0 and 63").wait_for()
