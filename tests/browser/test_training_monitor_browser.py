"""TrainingMonitor in JupyterLab: the charts move while the training cell is still running (the kernel busy), end on the
trainer's last values with a line per run in its own colour, a hover reads every run at one step; light and dark. (How an interrupted run
reads, with the checkpoint kept, is tested with a real KeyboardInterrupt in tests/unit/test_widgets_training_monitor.py.)"""

from __future__ import annotations

from textwrap import dedent

import pytest
from harness import jupyter_theme, number

pytestmark = pytest.mark.browser

STEPS = 120
CELLS = [
    dedent("""\
        import json, time
        import torch
        import interpwidgets as iw

        acts = torch.randn(8192, 16, generator=torch.Generator().manual_seed(0))
        small = dict(d_sae=64, batch_size=128, buffer_tokens=1024, progress=False)
        monitor = iw.widgets.TrainingMonitor(title="test runs", every=0.2)
        display(monitor)
        events = {"relu": [], "topk": []}

        def slowed(name):  # the trainer's own events, kept here too; 20 ms a step so the run lasts a few seconds
            show = monitor.track(name)
            def callback(event):
                events[name].append(event)
                show(event)
                time.sleep(0.02)
            return callback"""),
    dedent(f"""\
        iw.sae.train_on_activations(acts, architecture="relu", total_tokens=128 * {STEPS}, callback=slowed("relu"), **small)
        iw.sae.train_on_activations(acts, architecture="topk", k=4, total_tokens=128 * {STEPS}, callback=slowed("topk"), **small)
        last = {{name: [e for e in runs if e["event"] == "step"][-1] for name, runs in events.items()}}
        print("IW-EXPECTED", json.dumps(last))"""),
]


@pytest.fixture(scope="module")
def notebook(notebook_page):
    return notebook_page("training_monitor", CELLS)


@pytest.fixture(scope="module")
def root(notebook):
    root = notebook.page.locator(".iw-training-monitor").first
    root.wait_for()
    return root


def run_row(root, name):
    return root.locator(f".iw-monitor-run[data-run='{name}']")


def test_the_view_moves_while_the_training_cell_is_still_running(notebook, root):
    """Some update shows the relu run part way (0 < step < STEPS) before the training cell has printed its result:
    the view redraws during training, not only when the cell ends."""
    page = notebook.page
    page.wait_for_function(f"""() => {{
        const row = document.querySelector(".iw-training-monitor .iw-monitor-run[data-run='relu']");
        const step = row ? Number(row.dataset.step) : 0;
        return row && row.dataset.status === "running" && step > 0 && step < {STEPS};
    }}""", polling=50)
    assert page.locator(".jp-OutputArea-output", has_text="IW-EXPECTED").count() == 0


def test_finished_runs_show_the_trainers_last_values_in_their_own_colours(notebook, root):
    """After both runs: each says 'finished after STEPS steps'; every chart's latest value per run is the trainer's
    last step event to the three digits shown; the two swatches differ in colour."""
    from harness import printed

    expected = printed(notebook.page, "IW-EXPECTED")
    for name in ("relu", "topk"):
        run_row(root, name).locator(".iw-monitor-status", has_text=f"finished after {STEPS} steps").wait_for()
    for metric in ("loss", "l0", "explained_variance", "dead_fraction"):
        for name, last in expected.items():
            text = root.locator(f".iw-monitor-chart[data-metric='{metric}'] .iw-monitor-value[data-run='{name}']").inner_text()
            shown = number(text.removeprefix(f"{name} "))
            assert shown == pytest.approx(last[metric], rel=5e-3, abs=1e-3), (metric, name, text)
    swatches = root.locator(".iw-monitor-swatch").evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert len(set(swatches[:2])) == 2


def test_hovering_a_chart_reads_every_run_at_one_step(root):
    """Half way along the loss chart: the tooltip names a step near STEPS / 2 and a line for each run."""
    canvas = root.locator(".iw-monitor-chart[data-metric='loss'] canvas")
    box = canvas.bounding_box()
    left, right = 48, 10  # the chart's plot padding in CSS pixels
    canvas.hover(position={"x": left + (box["width"] - left - right) / 2, "y": box["height"] / 2})
    lines = root.locator(".iw-tooltip div").all_inner_texts()
    assert lines[0].startswith("step ") and abs(int(lines[0].split()[1]) - STEPS // 2) <= 2
    assert any(line.startswith("relu (step") for line in lines) and any(line.startswith("topk (step") for line in lines)
    root.page.mouse.move(0, 0)


def test_light_and_dark_screenshots(notebook, root, screenshot):
    page = notebook.page
    for name in ("training_monitor", "training_monitor_dark"):
        with jupyter_theme(page, dark=name.endswith("_dark")):
            page.wait_for_timeout(500)
            screenshot(root, name)
