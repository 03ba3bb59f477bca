"""A click flood in JupyterLab: 100 clicks in one second on different PatchHeatmap cells. The widget ends showing the
kernel's answer for the LAST cell clicked, shows no error, and the kernel answered far fewer than 100 requests: while
one request is in flight, a newer one with the same key replaces the one waiting (js/lib/messaging.ts), so a burst
costs the request in flight plus the last one."""

from __future__ import annotations

import json
from textwrap import dedent

import pytest
from harness import EXECUTE, number, wait_idle

pytestmark = pytest.mark.browser

CLICKS = 100
CELLS = [
    dedent("""\
        import json
        import interpwidgets as iw
        model = iw.load_model(device="cpu")
        task = iw.tasks.ioi(model, n=8, seed=0)
        result = iw.patching.activation_patch(model, task, site="z", normalize=False, progress=False)
        expected = {f"{l},{h}": result.intervene([(l, h)], ablation="zero").metric_after for l in range(4) for h in range(4)}
        print("IW-EXPECTED", json.dumps({"after": expected, "before": result.clean_metric}))"""),
    dedent("""\
        heatmap = iw.widgets.PatchHeatmap(result)
        answered = []  # every request the kernel answered: (method, params, ok)
        _handle = heatmap.handle_message
        def _counting(content):
            reply, buffers = _handle(content)
            answered.append((content.get("method"), content.get("params"), reply["ok"]))
            return reply, buffers
        heatmap.handle_message = _counting
        heatmap"""),
]

# Clicks `cells` on the heatmap's canvas, one every `gap` ms, as real click events at each cell's centre; resolves
# the milliseconds the flood took.
FLOOD = """async ([canvas, cells, gap]) => {
  const rect = canvas.getBoundingClientRect();
  const started = performance.now();
  for (const [i, [row, col]] of cells.entries()) {
    const x = rect.left + (col + 0.5) * rect.width / 4, y = rect.top + (row + 0.5) * rect.height / 4;
    for (const type of ["mousedown", "mouseup", "click"])
      canvas.dispatchEvent(new MouseEvent(type, { bubbles: true, clientX: x, clientY: y, button: 0 }));
    const wait = started + (i + 1) * gap - performance.now();  // on schedule, however long a click's handler takes
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  return performance.now() - started;
}"""



@pytest.fixture(scope="module")
def shown(widget_page):
    return widget_page("click_flood", CELLS, ".iw-patch", ready=lambda root: root.locator(".iw-matrix canvas").wait_for())


def flood_cells() -> list[tuple[int, int]]:
    """100 cells of the 4 x 4 grid, each different from the one before, ending on L2H1."""
    cells = [((i * 7) // 4 % 4, (i * 5 + i // 4) % 4) for i in range(CLICKS - 1)] + [(2, 1)]
    for i in range(1, len(cells)):
        if cells[i] == cells[i - 1]:
            cells[i] = ((cells[i][0] + 1) % 4, cells[i][1])
    return cells


def test_a_hundred_clicks_in_a_second_end_on_the_last_cells_answer(shown, screenshot):
    page, heatmap = shown.notebook.page, shown.root
    cells = flood_cells()
    assert len(cells) == CLICKS and all(a != b for a, b in zip(cells, cells[1:]))
    canvas = heatmap.locator(".iw-matrix canvas").element_handle()
    took = page.evaluate(FLOOD, [canvas, cells, 1000 / CLICKS])  # scheduled over one second; reported, not asserted
    last = cells[-1]
    heatmap.locator(".iw-outcome-title", has_text=f"L{last[0]}H{last[1]}").wait_for()
    wait_idle(heatmap)
    page.wait_for_timeout(500)  # nothing else arrives later
    wait_idle(heatmap)
    assert heatmap.locator(".iw-outcome-title").inner_text() == f"zero-ablate: L{last[0]}H{last[1]}"
    expected = shown.expected["after"][f"{last[0]},{last[1]}"]
    assert number(heatmap.locator(".iw-metric-after").inner_text()) == pytest.approx(expected, rel=0.01, abs=1e-3)
    assert number(heatmap.locator(".iw-metric-before").inner_text()) == pytest.approx(shown.expected["before"], rel=0.01, abs=1e-3)
    assert heatmap.locator(".iw-error").is_hidden()
    screenshot(heatmap, "click_flood_patch_heatmap")

    printed = page.evaluate(EXECUTE, 'print("IW-ANSWERED", json.dumps({"answered": answered, "history": len(heatmap.history)}))')
    kernel = json.loads(printed.split("IW-ANSWERED", 1)[1])
    answered = kernel["answered"]
    print(f"\n{CLICKS} clicks in {took:.0f} ms: the kernel answered {len(answered)} requests")
    assert all(method == "intervene" and ok for method, _, ok in answered), answered
    assert answered[-1][1] == {"cells": [list(last)]}  # the last request the kernel answered is the last click's
    assert 2 <= len(answered) <= CLICKS // 4, f"{len(answered)} requests answered for {CLICKS} clicks"
    collapsed = [a for i, a in enumerate(answered) if i == 0 or a[1] != answered[i - 1][1]]
    assert kernel["history"] == len(collapsed)  # each answered click recorded once (a repeat of the last step is one step)
