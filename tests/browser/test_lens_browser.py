"""LogitLens and DirectLogitAttribution in JupyterLab: both render with their labels and legends, hover shows the
kernel's values, a clicked cell lists its top tokens, following a token (typed, or clicked in that list) recolours
the grid by the kernel's answer, a clicked head or MLP bar is ablated in the kernel (and the head selected in a
linked AttentionPatterns), a bad token is answered with an error in the widget, and the dark theme recolours both."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from harness import jupyter_theme, number, wait_idle

pytestmark = pytest.mark.browser

PROMPT = "When Mary and John went to the store, John gave a drink to"
LAYER, POS = 2, 5  # the lens cell the test hovers and clicks (engine row 2 = resid_pre2)

CELLS = [
    dedent(f"""\
        import json
        import interpwidgets as iw
        model = iw.load_model(device="cpu")  # the bundled, trained teaching model
        task = iw.tasks.ioi(model, n=6, seed=0)
        lens_result = iw.lens.logit_lens(model, {PROMPT!r}, k=5)
        dla_result = iw.lens.direct_logit_attribution(model, task)"""),
    "lens = iw.widgets.LogitLens(lens_result)\nlens",
    "dla = iw.widgets.DirectLogitAttribution(dla_result)\ndla",
    dedent("""\
        patterns = iw.widgets.AttentionPatterns(model, task.clean_prompts[0])
        iw.widgets.link(dla, patterns)
        patterns"""),
    # the kernel's own numbers for what the test hovers and clicks
    dedent(f"""\
        final = lens_result.final_ids
        probs = [[float(lens_result.probs(int(final[p]))[l, p]) for p in range(lens_result.n_tokens)]
                 for l in range(lens_result.n_layers)]
        by_layer = dla_result.by_layer()
        expected = {{
            "n_tokens": lens_result.n_tokens,
            "final_probs": probs,
            "top": [t for t, _ in lens_result.top({LAYER}, {POS}, k=5)],
            "mary_probs": lens_result.probs(" Mary").tolist(),
            "mary_ranks": lens_result.ranks(" Mary").tolist(),
            "heads": dla_result.heads.tolist(),
            "mlp1": float(by_layer["mlp"][1]),
            "sum": float(dla_result.values.sum(1).mean()),
            "logit_diff": float(dla_result.logit_diff.mean()),
            "before": dla_result.intervene(["L1H2"]).metric_before,
            "zero_L1H2": dla_result.intervene(["L1H2"]).metric_after,
            "mean_mlp1": dla_result.intervene(["mlp1"], ablation="mean").metric_after,
        }}
        print("IW-EXPECTED", json.dumps(expected))"""),
]


@pytest.fixture(scope="module")
def shown(widget_page):
    return widget_page("lens", CELLS, ".iw-lens", ready=lambda root: root.locator(".iw-matrix canvas").wait_for())


@pytest.fixture(scope="module")
def page(shown):
    return shown.notebook.page


@pytest.fixture(scope="module")
def expected(shown) -> dict:
    return shown.expected


@pytest.fixture(scope="module")
def lens(shown):
    return shown.root


@pytest.fixture(scope="module")
def dla(page):
    root = page.locator(".iw-dla").first
    root.locator(".iw-matrix canvas").wait_for()
    wait_idle(root)
    return root


def cell_point(root, row: int, col: int, rows: int, cols: int) -> tuple[float, float]:
    box = root.locator(".iw-matrix canvas").bounding_box()
    return box["x"] + (col + 0.5) * box["width"] / cols, box["y"] + (row + 0.5) * box["height"] / rows


def lens_point(lens, expected, layer: int, pos: int) -> tuple[float, float]:
    """The centre of an engine row's cell: the final layer is drawn on top."""
    return cell_point(lens, 4 - layer, pos, 5, expected["n_tokens"])


def tooltip_text(root) -> str:
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    return tooltip.inner_text()


def test_lens_renders_rows_columns_and_legend(lens, expected, screenshot):
    assert lens.locator(".iw-row-labels > span").all_inner_texts() == [
        "resid_post3", "resid_pre3", "resid_pre2", "resid_pre1", "resid_pre0"]
    assert lens.locator(".iw-col-labels > span").count() == expected["n_tokens"]
    assert lens.locator(".iw-legend-units").inner_text() == "probability of the model's final prediction"
    screenshot(lens, "logit_lens")


def test_lens_hover_shows_the_kernels_probability(page, lens, expected):
    page.mouse.move(*lens_point(lens, expected, LAYER, POS))
    text = tooltip_text(lens)
    assert text.startswith(f"resid_pre{LAYER}") and "final prediction" in text
    shown = number(re.search(r": p (\S+),", text).group(1))
    assert shown == pytest.approx(expected["final_probs"][LAYER][POS], rel=0.01, abs=1e-3)


def test_a_clicked_cell_lists_its_top_tokens_and_one_of_them_is_followed(page, lens, expected, screenshot):
    page.mouse.click(*lens_point(lens, expected, LAYER, POS))
    rows = lens.locator(".iw-lens-top")
    rows.first.wait_for()
    assert rows.count() == 5
    assert lens.locator(".iw-lens-top .iw-token").evaluate_all("els => els.map(e => e.textContent)") == [
        t.replace("\n", "\u21b5") for t in expected["top"]]
    rows.nth(1).click()
    lens.locator(".iw-following", has_text="following").wait_for()
    wait_idle(lens)
    assert lens.locator(".iw-legend-units").inner_text().startswith("probability of \u2018")
    code = lens.locator(".iw-code-text").inner_text()
    assert re.fullmatch(r"lens_result\.probs\(\d+\)  # '.*'", code.splitlines()[-1]), code
    screenshot(lens, "logit_lens_followed")


def test_a_typed_token_recolours_the_grid_by_the_kernels_answer(page, lens, expected):
    lens.locator(".iw-follow-input").fill(" Mary")
    lens.locator(".iw-follow-input").press("Enter")
    lens.locator(".iw-legend-units", has_text="probability of \u2018 Mary\u2019").wait_for()
    wait_idle(lens)
    page.mouse.move(*lens_point(lens, expected, 3, 8))
    text = tooltip_text(lens)
    match = re.search(r"\u2018 Mary\u2019: p (\S+), rank (\d+)", text)
    assert match, text
    assert number(match.group(1)) == pytest.approx(expected["mary_probs"][3][8], rel=0.01, abs=1e-3)
    assert int(match.group(2)) == expected["mary_ranks"][3][8]


def test_a_token_that_is_not_one_token_is_answered_with_an_error(lens):
    lens.locator(".iw-follow-input").fill(" Mary and John")
    lens.locator(".iw-follow-input").press("Enter")
    lens.locator(".iw-error", has_text="is not one token").wait_for()
    wait_idle(lens)
    assert lens.locator(".iw-legend-units").inner_text() == "probability of \u2018 Mary\u2019"  # still the last good one
    lens.locator(".iw-reset").click()
    assert lens.locator(".iw-legend-units").inner_text() == "probability of the model's final prediction"
    lens.locator(".iw-dismiss").click()
    lens.locator(".iw-error").wait_for(state="hidden")


def test_dla_renders_heads_bars_and_the_sum_check(dla, expected, screenshot):
    assert dla.locator(".iw-row-labels > span").all_inner_texts() == ["L0", "L1", "L2", "L3"]
    assert dla.locator(".iw-col-labels > span").all_inner_texts() == ["H0", "H1", "H2", "H3"]
    assert dla.locator(".iw-dla-row").count() == 11
    assert dla.locator(".iw-legend-units").inner_text() == "direct effect on logit(answer) - logit(wrong)"
    assert number(dla.locator(".iw-sum").inner_text()) == pytest.approx(expected["sum"], rel=0.01)
    assert number(dla.locator(".iw-logit-diff").inner_text()) == pytest.approx(expected["logit_diff"], rel=0.01)
    mlp1 = dla.locator(".iw-dla-row[data-label='mlp1'] .iw-dla-value").inner_text()
    assert number(mlp1) == pytest.approx(expected["mlp1"], rel=0.01, abs=1e-3)
    screenshot(dla, "dla")


def test_dla_hover_shows_a_heads_value(page, dla, expected):
    page.mouse.move(*cell_point(dla, 2, 1, 4, 4))
    text = tooltip_text(dla)
    assert text.startswith("L2H1: ")
    assert number(re.match(r"L2H1: (\S+)", text).group(1)) == pytest.approx(expected["heads"][2][1], rel=0.01, abs=1e-3)


def test_a_clicked_head_is_ablated_in_the_kernel_and_selected_in_a_linked_view(page, dla, expected, screenshot):
    page.mouse.click(*cell_point(dla, 1, 2, 4, 4))
    dla.locator(".iw-outcome-title", has_text="zero-ablate: L1H2").wait_for()
    wait_idle(dla)
    assert number(dla.locator(".iw-metric-before").inner_text()) == pytest.approx(expected["before"], rel=0.01, abs=1e-3)
    assert number(dla.locator(".iw-metric-after").inner_text()) == pytest.approx(expected["zero_L1H2"], rel=0.01, abs=1e-3)
    assert dla.locator(".iw-top-after .iw-top-row").count() == 5
    assert "intervene(['L1H2'], ablation='zero')" in dla.locator(".iw-code-text").inner_text()
    screenshot(dla, "dla_ablated")
    patterns = page.locator(".iw-attention").first
    patterns.locator(".iw-caption", has_text="L1H2:").wait_for()


def test_the_menu_sets_the_ablation_and_an_mlp_bar_is_ablated(dla, expected):
    dla.locator(".iw-toolbar select").select_option("mean")
    dla.locator(".iw-dla-row[data-label='mlp1']").click()
    dla.locator(".iw-outcome-title", has_text="mean-ablate: mlp1").wait_for()
    wait_idle(dla)
    assert number(dla.locator(".iw-metric-after").inner_text()) == pytest.approx(expected["mean_mlp1"], rel=0.01, abs=1e-3)


LEGEND_START_IS_DARK = """(root) => {
  const bar = root.querySelector(".iw-legend-bar");
  if (!bar) return false;
  const [r, g, b] = bar.getContext("2d").getImageData(0, 0, 1, 1).data;
  return r + g + b < 150;
}"""


def test_dark_theme_recolours_both_views(page, lens, dla, screenshot):
    with jupyter_theme(page, dark=True):
        page.wait_for_function(LEGEND_START_IS_DARK, arg=lens.element_handle())  # the sequential scale starts dark
        screenshot(lens, "logit_lens_dark")
        dla.scroll_into_view_if_needed()
        screenshot(dla, "dla_dark")
