"""FeatureDashboard in JupyterLab: renders a feature's examples, histogram, density and logit effects; hover
shows values; prev/next and jumping to a feature fetch from the kernel and redraw; errors appear in the widget.
The expected values are computed in the notebook by brute force over the corpus and from W_dec[f] @ W_U,
not by the engine the widget uses."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from harness import number, texts, wait_idle

pytestmark = pytest.mark.browser

HOOK, PLACE = "blocks.1.hook_resid_post", "resid_post1"

CELLS = [
    dedent(f"""\
        import json
        import torch
        from interpwidgets.models import build_teaching_model
        from interpwidgets.sae import SAEConfig, build_sae
        from interpwidgets.widgets.feature_dashboard import FeatureDashboard
        model = build_teaching_model(seed=0)
        sae = build_sae(SAEConfig(d_in=128, d_sae=64, architecture="topk", k=6, hook_name={HOOK!r}), seed=1)
        corpus = torch.randint(1, model.cfg.d_vocab, (16, 32), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():  # by hand: every feature's activation on every corpus token, [rows, seq, d_sae]
            _, cache = model.run_with_cache(corpus)
            acts = sae.encode(cache[{HOOK!r}])
        ranked = (acts[..., :63] > 0).sum((0, 1)).argsort(descending=True).tolist()"""),
    dedent("""\
        dash = FeatureDashboard(model, sae, feature=ranked[0], corpus=corpus)
        dash"""),
    # by hand, for the features the test visits (the dashboard keeps 10 rows of context 10 before, 4 after a peak)
    dedent("""\
        def facts(f):
            a = acts[..., f]
            peaks = a.max(dim=1)
            rows = [r for r in peaks.values.argsort(descending=True)[:10].tolist() if peaks.values[r] > 0]
            if not rows:
                return {"density": 0.0, "max": 0.0, "n_examples": 0}
            row, peak = rows[0], int(peaks.indices[rows[0]])
            start = max(0, peak - 10)
            active = a[a > 0]
            bins = (active / active.max() * 32).long().clamp(max=31).bincount(minlength=32)
            logits = (sae.W_dec[f] @ model.W_U).topk(8).indices.tolist()
            return {"density": float((a > 0).float().mean()), "max": float(a.max()), "n_examples": len(rows),
                    "first_tokens": [model.tokenizer.decode([t]) for t in corpus[row, start:peak + 5].tolist()],
                    "first_values": a[row, start:peak + 5].tolist(), "peak": peak - start, "hist": bins.tolist(),
                    "top": [model.tokenizer.decode([t]) for t in logits]}
        F = ranked[0]
        J = next(f for f in ranked[1:] if f != F + 1)
        expected = {"F": F, "J": J, "facts": facts(F), "next": facts(F + 1), "jump": facts(J), "n_tokens": corpus.numel()}
        print("IW-EXPECTED", json.dumps(expected))"""),
]


@pytest.fixture(scope="module")
def shown(widget_page):
    return widget_page("feature_dashboard", CELLS, ".iw-dashboard",
                       ready=lambda root: root.locator(".iw-dash-title").wait_for())


@pytest.fixture(scope="module")
def expected(shown) -> dict:
    return shown.expected


@pytest.fixture(scope="module")
def root(shown, expected):
    wait_for_feature(shown.root, expected["F"])
    return shown.root


def wait_for_feature(root, feature: int) -> None:
    root.locator(".iw-dash-title", has_text=re.compile(rf"^Feature {feature}$")).wait_for()
    wait_idle(root)


def check_summary(root, facts: dict) -> None:
    assert number(root.locator(".iw-density").inner_text().removeprefix("density ")) == pytest.approx(
        facts["density"] * 100, rel=0.01)
    assert number(root.locator(".iw-max").inner_text()) == pytest.approx(facts["max"], rel=0.01)
    assert root.locator(".iw-example").count() == facts["n_examples"]
    if facts["n_examples"]:
        assert texts(root.locator(".iw-example").first.locator(".iw-token")) == facts["first_tokens"]
        assert texts(root.locator(".iw-promoted .iw-token")) == facts["top"]


def test_renders_the_features_summary(root, expected, screenshot):
    check_summary(root, expected["facts"])
    header = root.locator(".iw-dash-header").inner_text()
    assert f"of {expected['n_tokens']} tokens" in header and PLACE in header
    assert root.locator(".iw-legend-units").inner_text() == f"activation of {PLACE}/{expected['F']}"
    assert root.locator(".iw-suppressed .iw-bar-row").count() == 8
    screenshot(root, "feature_dashboard")


def test_hover_shows_example_and_histogram_values(shown, root, expected):
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
    shown.notebook.page.mouse.move(box["x"] + (tallest + 0.5) * box["width"] / len(hist), box["y"] + box["height"] - 3)
    root.locator(".iw-tooltip", has_text="tokens:").wait_for(state="visible")
    assert number(re.search(r"tokens: (\S+)", tooltip.inner_text()).group(1)) == hist[tallest]


def test_next_fetches_the_next_feature(root, expected):
    root.locator(".iw-next").click()
    wait_for_feature(root, expected["F"] + 1)
    check_summary(root, expected["next"])
    if not expected["next"]["n_examples"]:
        assert root.locator(".iw-examples").inner_text() == "never active on the corpus"
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
                  f"{{detail: {{method: 'feature', params: {{hook: '{HOOK}'}}}}}}))")
    root.locator(".iw-error", has_text="unexpected parameters ['hook']").wait_for()


# ---- #16: Enter commits the feature box, the peak token is one outlined box, dense features say so
def test_enter_in_the_feature_box_commits_it_and_the_box_shows_the_feature_shown(root, expected):
    box = root.locator("input[aria-label='feature']")
    box.fill(str(expected["J"]))
    box.press("Enter")  # a real key press in JupyterLab: the notebook's shortcuts must not take it
    wait_for_feature(root, expected["J"])
    check_summary(root, expected["jump"])
    box.fill("5")
    root.locator(".iw-next").click()  # an uncommitted edit is committed on blur (5), then next: 6
    wait_for_feature(root, 6)
    assert box.input_value() == "6"
    box.fill(str(expected["F"]))
    box.press("Enter")
    wait_for_feature(root, expected["F"])
    assert box.input_value() == str(expected["F"])


def test_the_peak_token_stays_one_outlined_box_at_every_width(root):
    """Its outline never splits across lines, and a leading space is drawn inside it (not left as an empty box)."""
    examples = root.locator(".iw-examples")
    split = examples.evaluate("""box => {
        const out = [];
        for (let width = 90; width <= 420; width += 7) {
            box.style.width = width + 'px';
            for (const peak of box.querySelectorAll('.iw-peak')) {
                const rects = peak.getClientRects().length;
                if (rects !== 1) out.push([width, peak.textContent, rects]);
            }
        }
        box.style.width = '';
        return out;
    }""")
    assert split == []
    spaced = root.locator(".iw-peak").evaluate_all("els => els.filter(e => e.textContent.startsWith(' ')).map(e => "
                                                   "e.getBoundingClientRect().width > e.firstChild.length * 2)")
    assert all(spaced)


def test_a_dense_feature_is_marked_dense_in_the_header(root, expected, screenshot):
    density = expected["facts"]["density"]
    badge = root.locator(".iw-dash-header .iw-dense")
    assert density > 0.1, "the test's first feature should be a dense one"
    assert badge.inner_text() == f"dense: fires on {round(density * 100)}% of tokens"
    screenshot(root, "feature_dashboard_dense")
