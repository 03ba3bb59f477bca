"""Copy as code in JupyterLab: a click on a PatchHeatmap cell shows the Python call under the outcome, "copy" puts
it in the page's copy target (and on the clipboard when the browser grants it), and running the copied code in the
same kernel gives the number the widget shows."""

from __future__ import annotations

import json
from textwrap import dedent

import pytest
from harness import EXECUTE, number, wait_idle

pytestmark = pytest.mark.browser

CELLS = [
    dedent("""\
        import interpwidgets as iw
        model = iw.load_model(device="cpu")
        task = iw.tasks.ioi(model, n=8, seed=0)
        result = iw.patching.activation_patch(model, task, site="z", normalize=False, progress=False)"""),
    'heatmap = iw.widgets.PatchHeatmap(result, action="mean")\nheatmap',
]

# Runs code in the notebook's kernel and returns what it printed (or its error), as a later cell would.

# The copied code run as a cell whose last line is the call; prints its metric and the one the widget recorded.
CHECK = """\
import ast as _ast, json as _json
_tree = _ast.parse({code!r})
_last = _tree.body.pop()
exec(compile(_tree, "<copied>", "exec"))
_outcome = eval(compile(_ast.Expression(_last.value), "<copied>", "eval"))
print("IW-RAN", _json.dumps({{"after": float(_outcome.metric_after), "recorded": heatmap.history[-1].shown["metric_after"]}}))
"""


@pytest.fixture(scope="module")
def shown(widget_page):
    return widget_page("copy_code", CELLS, ".iw-patch", marker=None,
                       ready=lambda root: root.locator(".iw-matrix canvas").wait_for())


def test_copy_puts_the_recorded_call_on_the_page_and_running_it_gives_the_widgets_number(shown, screenshot):
    page, heatmap = shown.notebook.page, shown.root
    box = heatmap.locator(".iw-matrix canvas").bounding_box()
    page.mouse.click(box["x"] + 2.5 * box["width"] / 4, box["y"] + 1.5 * box["height"] / 4)  # L1H2
    heatmap.locator(".iw-outcome-title", has_text="L1H2").wait_for()
    wait_idle(heatmap)
    code = heatmap.locator(".iw-code-text")
    assert code.inner_text() == "result.intervene([(1, 2)], ablation='mean')"  # the notebook's own name, `result`

    origin = page.evaluate("window.location.origin")
    try:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
        clipboard = True
    except Exception:  # noqa: BLE001 - a browser without clipboard permissions still fills the copy target
        clipboard = False
    heatmap.locator(".iw-copy").click()
    heatmap.locator(".iw-copy[data-iw-copied]").wait_for()
    copied = heatmap.locator("textarea.iw-copy-target").input_value()
    assert copied == code.inner_text() == heatmap.get_attribute("data-iw-copied")
    if clipboard and heatmap.locator(".iw-copy").get_attribute("data-iw-copied") == "clipboard":
        assert page.evaluate("navigator.clipboard.readText()") == copied
    screenshot(heatmap, "copy_code_patch_heatmap")

    printed = page.evaluate(EXECUTE, CHECK.format(code=copied))
    assert "IW-RAN" in printed, printed
    ran = json.loads(printed.split("IW-RAN", 1)[1])
    assert ran["after"] == ran["recorded"]
    assert number(heatmap.locator(".iw-metric-after").inner_text()) == pytest.approx(ran["after"], rel=0.01, abs=1e-3)
