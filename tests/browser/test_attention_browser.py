"""AttentionPatterns in JupyterLab: renders an iw.lens result, hover values match the kernel, head/layer/weighting
changes fetch from the kernel, tokens are text (no XSS), malformed messages are answered with an error in the widget."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from harness import jupyter_theme, wait_idle

pytestmark = pytest.mark.browser

PROMPT = "When Mary and John went to the store, John gave a drink to"
QUERY, KEY = 5, 2
XSS_TOKENS = ["<img src=x onerror=alert(1)>", "<b>bold</b>", "&amp;", " plain"]

CELLS = [
    dedent("""\
        import json, torch
        import interpwidgets as iw
        model = iw.load_model(device="cpu")  # the bundled, trained teaching model"""),
    f"patterns = iw.widgets.AttentionPatterns(iw.lens.attention_patterns(model, {PROMPT!r}))\npatterns",
    # the kernel's own values for the cells the test hovers
    dedent(f"""\
        result = patterns.result
        values = {{f"{{w}}/{{l}}/{{h}}": float(result.pattern(l, h, weighting=w)[{QUERY}, {KEY}])
                  for w in ("attention", "value") for l in range(4) for h in range(4)}}
        print("IW-VALUES", json.dumps(values))"""),
    dedent(f"""\
        tokens = {XSS_TOKENS!r}
        pattern = torch.tril(torch.ones(2, 4, 4))
        pattern = pattern / pattern.sum(-1, keepdim=True)
        xss = iw.widgets.AttentionPatterns(pattern=pattern, tokens=tokens, view="text")
        xss"""),
]


@pytest.fixture(scope="module")
def shown(widget_page):
    return widget_page("attention", CELLS, ".iw-attention", marker="IW-VALUES",
                       ready=lambda root: root.locator(".iw-matrix canvas").wait_for())


@pytest.fixture(scope="module")
def notebook(shown):
    return shown.notebook


@pytest.fixture(scope="module")
def kernel_values(shown) -> dict[str, float]:
    return shown.expected


def widget(notebook, index: int = 0):
    return notebook.page.locator(".iw-attention").nth(index)


def hover_value(notebook, root, query: int, key: int, n: int) -> float:
    canvas = root.locator(".iw-matrix canvas")
    box = canvas.bounding_box()
    cell = box["width"] / n
    notebook.page.mouse.move(box["x"] + (key + 0.5) * cell, box["y"] + (query + 0.5) * cell)
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    text = tooltip.inner_text()
    assert f"query {query} " in text and f"key {key} " in text
    return float(re.search(r": (\S+)$", text.strip()).group(1).replace("\u2212", "-"))


def shown_head(root, layer: int, head: int) -> None:
    root.locator(".iw-caption", has_text=f"L{layer}H{head}:").wait_for()
    wait_idle(root)


def test_renders_heads_and_pattern(notebook, screenshot):
    root = widget(notebook)
    root.locator(".iw-matrix canvas").wait_for()
    wait_idle(root)
    assert root.locator(".iw-head").count() == 4
    assert root.locator(".iw-head[aria-pressed='true']").get_attribute("data-head") == "0"
    assert root.locator(".iw-legend").count() == 1
    assert root.locator(".iw-error").is_hidden()
    screenshot(root, "attention_matrix")


def test_hover_shows_the_kernels_value(notebook, kernel_values):
    root = widget(notebook)
    shown_head(root, 0, 0)
    n = root.locator(".iw-row-labels > span").count()
    assert n == 15
    assert hover_value(notebook, root, QUERY, KEY, n) == pytest.approx(kernel_values["attention/0/0"], abs=6e-3)


def test_picking_head_layer_and_weighting_fetches_from_the_kernel(notebook, kernel_values, screenshot):
    root = widget(notebook)
    root.locator(".iw-head[data-head='2']").click()
    shown_head(root, 0, 2)
    assert hover_value(notebook, root, QUERY, KEY, 15) == pytest.approx(kernel_values["attention/0/2"], abs=6e-3)

    root.get_by_label("layer").select_option("2")
    shown_head(root, 2, 2)
    root.locator(".iw-head[data-head='1']").click()
    shown_head(root, 2, 1)
    assert hover_value(notebook, root, QUERY, KEY, 15) == pytest.approx(kernel_values["attention/2/1"], abs=6e-3)

    root.get_by_label("weights").select_option("value")
    root.locator(".iw-legend-units", has_text="value-weighted").wait_for()
    wait_idle(root)
    expected = kernel_values["value/2/1"]
    top = max(v for k, v in kernel_values.items() if k.startswith("value/2/"))
    assert hover_value(notebook, root, QUERY, KEY, 15) == pytest.approx(expected, abs=top / 255 + 0.01 * abs(expected))
    screenshot(root, "attention_value_weighted")


def test_text_view_highlights_the_hovered_tokens_attention(notebook, screenshot):
    root = widget(notebook)
    root.get_by_label("view").select_option("text")
    tokens = root.locator(".iw-text .iw-token")
    tokens.first.wait_for()
    assert tokens.count() == 15
    tokens.nth(10).hover()  # the second " John"
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    assert tooltip.inner_text().startswith("10 \u2018 John\u2019 attends to:")
    coloured = root.locator(".iw-text .iw-token[style*='background']")
    assert coloured.count() == 11  # the token itself and the ten before it; later ones are masked
    screenshot(root, "attention_text")
    root.get_by_label("view").select_option("matrix")
    root.locator(".iw-matrix canvas").wait_for()


def test_tokens_render_as_text(notebook, screenshot):
    root = widget(notebook, 1)
    root.locator(".iw-text .iw-token").first.wait_for()
    wait_idle(root)
    shown = root.locator(".iw-text .iw-token").all_inner_texts()
    assert shown == XSS_TOKENS
    assert root.locator("img, b").count() == 0
    root.locator(".iw-text .iw-token").nth(3).hover()
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    assert "attends to" in tooltip.inner_text() and "0.25" in tooltip.inner_text()
    assert notebook.dialogs == []
    screenshot(root, "attention_text_xss")


def test_malformed_request_is_answered_in_the_widget(notebook, screenshot):
    root = widget(notebook)
    error = root.locator(".iw-error")
    root.evaluate("el => el.dispatchEvent(new CustomEvent('iw-request', {detail: {method: 'pattern', params: {layer: 'zero', head: 99}}}))")
    error.wait_for(state="visible")
    assert "unexpected parameters ['head', 'layer']" in error.inner_text()  # the layer and head shown are traits
    root.evaluate("el => el.dispatchEvent(new CustomEvent('iw-request', {detail: {method: 'rm -rf', params: []}}))")
    root.locator(".iw-error", has_text="unknown method").wait_for()
    screenshot(root, "attention_error")
    # the kernel carries on: a real request afterwards is served and clears the error
    root.locator(".iw-head[data-head='3']").click()
    shown_head(root, 2, 3)
    error.wait_for(state="hidden")


LEGEND_START_IS_DARK = """(root) => {
  const bar = root.querySelector(".iw-legend-bar");
  if (!bar) return false;
  const [r, g, b] = bar.getContext("2d").getImageData(0, 0, 1, 1).data;
  return r + g + b < 150;
}"""


def test_dark_theme_recolours_the_widget(notebook, screenshot):
    page, root = notebook.page, widget(notebook)
    with jupyter_theme(page, dark=True):
        page.wait_for_function(LEGEND_START_IS_DARK, arg=root.element_handle())  # the scale starts at the background
        background = root.evaluate("el => getComputedStyle(el).backgroundColor")
        assert sum(int(c) for c in background[background.index("(") + 1 : -1].split(",")[:3]) < 150
        screenshot(root, "attention_dark")
