"""PatchHeatmap in JupyterLab: renders, hover values match the result, a click runs the intervention in the
kernel and shows its answer headed with the run it acted on and that run's first prompt, the action menu sets what a
click does and the hint says it, no empty band above short column labels, shift-click applies one action to several
cells, the selection is shared with a linked AttentionPatterns, the dark theme."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from harness import jupyter_theme, number, printed, wait_idle

pytestmark = pytest.mark.browser

CELLS = [
    dedent("""\
        import json
        import interpwidgets as iw
        model = iw.load_model(device="cpu")  # the bundled, trained teaching model
        task = iw.tasks.ioi(model, n=8, seed=0)
        result = iw.patching.activation_patch(model, task, site="z", normalize=False, progress=False)"""),
    "heatmap = iw.widgets.PatchHeatmap(result)\nheatmap",
    dedent("""\
        patterns = iw.widgets.AttentionPatterns(model, task.clean_prompts[0])
        iw.widgets.link(heatmap, patterns)
        patterns"""),
    # what the kernel computes for the cells the test clicks
    dedent("""\
        into_clean = iw.patching.activation_patch(model, task, site="z", patch_into="clean", normalize=False, progress=False)
        expected = {
            "values": result.values.tolist(),
            "one": result.intervene([(1, 2)], ablation="zero").metric_after,
            "two": result.intervene([(0, 1), (3, 2)], ablation="zero").metric_after,
            "patched": result.intervene([(1, 2)]).metric_after,
            "patched_into_clean": into_clean.intervene([(1, 2)]).metric_after,
            "before": result.clean_metric,
            "corrupt": result.corrupt_metric,
            "clean_tail": "".join(model.tokenizer.decode([i]) for i in task.clean_tokens[0, -12:].tolist()),
            "corrupt_tail": "".join(model.tokenizer.decode([i]) for i in task.corrupt_tokens[0, -12:].tolist()),
        }
        print("IW-EXPECTED", json.dumps(expected))"""),
    'iw.widgets.PatchHeatmap(into_clean, action="patch")',
    'iw.widgets.PatchHeatmap(result, action="mean")',
]


@pytest.fixture(scope="module")
def notebook(notebook_page):
    return notebook_page("patch_heatmap", CELLS)


@pytest.fixture(scope="module")
def expected(notebook) -> dict:
    return printed(notebook.page, "IW-EXPECTED")


def cell_point(root, row: int, col: int, rows: int = 4, cols: int = 4) -> tuple[float, float]:
    box = root.locator(".iw-matrix canvas").bounding_box()
    return box["x"] + (col + 0.5) * box["width"] / cols, box["y"] + (row + 0.5) * box["height"] / rows


@pytest.fixture(scope="module")
def heatmap(notebook):
    root = notebook.page.locator(".iw-patch").first
    root.locator(".iw-matrix canvas").wait_for()
    return root


def test_renders_with_labels_and_legend(heatmap, screenshot):
    assert heatmap.locator(".iw-row-labels > span").all_inner_texts() == ["L0", "L1", "L2", "L3"]
    assert heatmap.locator(".iw-col-labels > span").all_inner_texts() == ["H0", "H1", "H2", "H3"]
    assert heatmap.locator(".iw-legend-units").inner_text() == "logit difference"
    ticks = heatmap.locator(".iw-legend-ticks > span").all_inner_texts()
    assert len(ticks) == 3 and ticks[1] == "0" and number(ticks[0]) == -number(ticks[2])
    screenshot(heatmap, "patch_heatmap")


def test_short_column_labels_leave_no_empty_band_above_them(heatmap):
    """The column labels ("H0".."H3") sit right under the axis caption: no tall empty label box above them."""
    caption = heatmap.locator(".iw-caption").bounding_box()
    labels = [span.bounding_box() for span in heatmap.locator(".iw-col-labels > span").all()]
    canvas = heatmap.locator(".iw-matrix canvas").bounding_box()
    gap = min(box["y"] for box in labels) - (caption["y"] + caption["height"])
    assert gap < 8, f"{gap:.0f} px of empty space above the column labels"
    assert canvas["y"] - max(box["y"] + box["height"] for box in labels) < 6


def test_hover_shows_value_and_labels(notebook, heatmap, expected):
    notebook.page.mouse.move(*cell_point(heatmap, 2, 3))
    tooltip = heatmap.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    text = tooltip.inner_text()
    assert "layer L2" in text and "head H3" in text
    shown = number(re.search(r"logit difference: (\S+)", text).group(1))
    assert shown == pytest.approx(expected["values"][2][3], rel=0.01, abs=1e-3)


def test_click_runs_the_intervention_in_the_kernel(notebook, heatmap, expected, screenshot):
    notebook.page.mouse.click(*cell_point(heatmap, 1, 2))
    heatmap.locator(".iw-outcome-title", has_text="L1H2").wait_for()
    wait_idle(heatmap)
    assert number(heatmap.locator(".iw-metric-before").inner_text()) == pytest.approx(expected["before"], rel=0.01, abs=1e-3)
    assert number(heatmap.locator(".iw-metric-after").inner_text()) == pytest.approx(expected["one"], rel=0.01, abs=1e-3)
    assert heatmap.locator(".iw-top-before .iw-top-row").count() == 5
    assert heatmap.locator(".iw-top-after .iw-top-row").count() == 5
    assert heatmap.locator(".iw-top-before .iw-top-title").inner_text() == "clean run: top predictions"
    assert heatmap.locator(".iw-metric").inner_text().startswith("metric on the clean prompts:")
    assert heatmap.locator(".iw-top-after .iw-top-title").inner_text() == "clean run, zero-ablated"
    prompt = heatmap.locator(".iw-prompt").inner_text()
    assert prompt.startswith("predictions for the first clean prompt: ") and prompt.endswith(expected["clean_tail"].strip())
    notebook.page.mouse.move(0, 0)  # the tooltip off the picture
    heatmap.locator(".iw-tooltip").wait_for(state="hidden")
    screenshot(notebook.page.locator(".jp-Notebook"), "patch_heatmap_outcome")


def test_click_selects_the_head_in_a_linked_widget(notebook, heatmap):
    patterns = notebook.page.locator(".iw-attention").first
    patterns.locator(".iw-caption", has_text="L1H2:").wait_for()
    assert patterns.locator(".iw-head[aria-pressed='true']").get_attribute("data-head") == "2"


def test_shift_click_applies_one_action_to_several_cells(notebook, heatmap, expected):
    apply = heatmap.locator(".iw-apply")
    assert apply.is_disabled()
    notebook.page.keyboard.down("Shift")
    notebook.page.mouse.click(*cell_point(heatmap, 0, 1))
    notebook.page.mouse.click(*cell_point(heatmap, 3, 2))
    notebook.page.keyboard.up("Shift")
    assert apply.inner_text() == "apply to 2 selected"
    apply.click()
    heatmap.locator(".iw-outcome-title", has_text="L0H1, L3H2").wait_for()
    wait_idle(heatmap)
    assert number(heatmap.locator(".iw-metric-after").inner_text()) == pytest.approx(expected["two"], rel=0.01, abs=1e-3)


def test_the_menu_sets_the_action_and_a_patch_is_headed_with_the_corrupt_run_it_patches(notebook, heatmap, expected):
    """Patching into the corrupt run: the outcome's "before" predictions and metric are the corrupt run's."""
    heatmap.locator(".iw-toolbar select").select_option("patch")
    notebook.page.mouse.click(*cell_point(heatmap, 1, 2))
    heatmap.locator(".iw-outcome-title", has_text="patch clean into corrupt: L1H2").wait_for()
    wait_idle(heatmap)
    assert heatmap.locator(".iw-top-before .iw-top-title").inner_text() == "corrupt run: top predictions"
    assert heatmap.locator(".iw-top-after .iw-top-title").inner_text() == "corrupt run, clean patched in"
    assert heatmap.locator(".iw-prompt").inner_text().endswith(expected["corrupt_tail"].strip())
    assert heatmap.locator(".iw-click-hint").inner_text().startswith("click a cell: patch it clean into corrupt")
    assert heatmap.locator(".iw-metric").inner_text().startswith("metric on the corrupt prompts:")
    assert number(heatmap.locator(".iw-metric-before").inner_text()) == pytest.approx(expected["corrupt"], rel=0.01, abs=1e-3)
    assert number(heatmap.locator(".iw-metric-after").inner_text()) == pytest.approx(expected["patched"], rel=0.01, abs=1e-3)


def test_a_result_patched_into_the_clean_run_heads_its_patch_with_the_clean_run(notebook, expected):
    into_clean = notebook.page.locator(".iw-patch").nth(1)
    into_clean.scroll_into_view_if_needed()
    into_clean.locator(".iw-matrix canvas").wait_for()
    notebook.page.mouse.click(*cell_point(into_clean, 1, 2))
    into_clean.locator(".iw-outcome-title", has_text="patch corrupt into clean: L1H2").wait_for()
    wait_idle(into_clean)
    assert into_clean.locator(".iw-top-before .iw-top-title").inner_text() == "clean run: top predictions"
    assert into_clean.locator(".iw-metric").inner_text().startswith("metric on the clean prompts:")
    assert number(into_clean.locator(".iw-metric-after").inner_text()) == pytest.approx(
        expected["patched_into_clean"], rel=0.01, abs=1e-3)


def test_the_menu_shows_the_action_a_widget_was_made_with(notebook):
    """PatchHeatmap(result, action="mean") (as 01_patching makes it): the menu reads "mean-ablate" and the hint says a
    click mean-ablates."""
    mean = notebook.page.locator(".iw-patch").nth(2)
    mean.scroll_into_view_if_needed()
    select = mean.locator(".iw-toolbar select")
    select.wait_for()
    assert select.input_value() == "mean"
    assert select.evaluate("el => el.options[el.selectedIndex].text") == "mean-ablate"
    assert mean.locator(".iw-click-hint").inner_text().startswith("click a cell: mean-ablate it on the clean prompts")


def test_dark_theme(notebook, heatmap, screenshot):
    page = notebook.page
    with jupyter_theme(page, dark=True):
        page.wait_for_timeout(500)
        heatmap.scroll_into_view_if_needed()
        screenshot(heatmap, "patch_heatmap_dark")
