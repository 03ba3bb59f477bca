"""Benchmark: the widgets in a real JupyterLab + Chromium, against circuitsvis where it has a counterpart.

Measures
  - bytes to the browser for attention patterns of 12 heads at 128, 512 and 2048 tokens:
    AttentionPatterns (widget state + one layer's thumbnails + the open head, counted on the kernel
    websocket, and the payload alone) against circuitsvis' `attention.attention_patterns` HTML (its
    offline variant with the JavaScript bundle inlined, and the CDN variant);
  - first render in Chromium: from running the cell to the picture being drawn, for both;
  - click-to-redraw latency of a head ablation in PatchHeatmap (median over `--clicks` clicks), next
    to the kernel's own time for the same intervention.
The attention patterns are synthetic (causal softmax of random scores, seeded), the same for both.
Prints a table and writes bench/results/widgets.json.

    python bench/bench_widgets.py [--sizes 128 512 2048] [--clicks 10] [--render-timeout 240]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from textwrap import dedent

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "widgets.json"
sys.path.insert(0, str(REPO / "tests" / "browser"))
harness = importlib.import_module("harness")  # JupyterLab + Chromium driver shared with the browser tests

HEADS = 12


def synthetic_patterns(n: int, heads: int = HEADS, seed: int = 0) -> torch.Tensor:
    """[heads, n, n] causal softmax of N(0, 3^2) scores."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(heads, n, n, generator=generator) * 3
    return scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf")).softmax(-1)


def tokens_for(n: int) -> list[str]:
    return [f" w{i}" for i in range(n)]


# ---- payload sizes computed in Python ----------------------------------------------------------------
def widget_payload_bytes(pattern: torch.Tensor, tokens: list[str]) -> dict[str, int]:
    """AttentionPatterns' own payload: state JSON + thumbnails + first head; and with every head of the layer."""
    from interpwidgets.widgets import AttentionPatterns

    widget = AttentionPatterns(pattern=pattern, tokens=tokens)

    def reply_size(method: str, head: int = 0) -> int:
        widget.head = head  # what the browser writes before it asks with the bare verb
        reply, buffers = widget.handle_message({"kind": "iw:request", "id": "b-1", "method": method, "params": {}})
        assert reply["ok"], reply
        return len(json.dumps(reply).encode()) + sum(len(b) for b in buffers)

    state = len(json.dumps(widget.get_state()).encode())
    thumbnails = reply_size("thumbnails")
    heads = [reply_size("pattern", head=h) for h in range(pattern.shape[0])]
    return {"state": state, "thumbnails": thumbnails, "first_view": state + thumbnails + heads[0],
            "all_heads": state + thumbnails + sum(heads)}


def circuitsvis_html_bytes(pattern: torch.Tensor, tokens: list[str]) -> dict[str, int | bool]:
    """Sizes of circuitsvis' HTML (inline bundle / CDN); built for real up to 512 tokens, else computed exactly
    from the same JSON serialisation head by head (the full string would be around a gigabyte)."""
    import circuitsvis as cv

    n = len(tokens)
    if n <= 512:
        html = cv.attention.attention_patterns(tokens, pattern)
        return {"inline": len(html.local_src.encode()), "cdn": len(html.cdn_src.encode()), "built": True}
    tiny = cv.attention.attention_patterns(["a"], torch.zeros(1, 1, 1))
    tiny_props = len(json.dumps({"tokens": ["a"], "attention": [[[0.0]]]}))
    heads = [len(json.dumps(head.tolist())) for head in pattern]
    props = len(json.dumps({"tokens": tokens, "attention": []})) + sum(heads) + 2 * (len(heads) - 1)
    return {"inline": len(tiny.local_src.encode()) - tiny_props + props,
            "cdn": len(tiny.cdn_src.encode()) - tiny_props + props, "built": False}


# ---- in the browser -----------------------------------------------------------------------------------
MEASURE_CELL = """async ({index, kind, timeoutMs}) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  await panel.context.sessionContext.ready;
  panel.content.activeCellIndex = index;
  const t0 = performance.now();
  const run = app.commands.execute("notebook:run-cell");
  if (kind === "cell") {
    await run;
    return performance.now() - t0;
  }
  const node = panel.content.widgets[index].outputArea.node;
  const drawn = () => {
    if (kind === "widget") {
      const root = node.querySelector(".iw-root");
      return root && root.dataset.iwStatus === "idle" && root.querySelector(".iw-matrix canvas, .iw-text .iw-token");
    }
    const host = node.querySelector("[id^='circuits-vis-']");
    return host && host.childElementCount > 0;
  };
  return await new Promise((resolve) => {
    const check = () => {
      if (drawn()) requestAnimationFrame(() => resolve(performance.now() - t0));
      else if (performance.now() - t0 > timeoutMs) resolve(null);
      else requestAnimationFrame(check);
    };
    check();
  });
}"""

CLICK_CELL = """async ({x, y, label}) => {
  const root = document.querySelector(".iw-patch");
  const canvas = root.querySelector(".iw-matrix canvas");
  const t0 = performance.now();
  canvas.dispatchEvent(new MouseEvent("click", {clientX: x, clientY: y, bubbles: true}));
  await new Promise((resolve) => {
    const check = () => {
      const title = root.querySelector(".iw-outcome-title");
      if (title && title.textContent.endsWith(": " + label) && root.dataset.iwStatus === "idle") resolve();
      else requestAnimationFrame(check);
    };
    check();
  });
  await new Promise((resolve) => requestAnimationFrame(resolve));
  return performance.now() - t0;
}"""


class FrameCounter:
    """Bytes the page receives on its websockets (the kernel channel)."""

    def __init__(self, page) -> None:
        self.count = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._add))

    def _add(self, payload: str | bytes) -> None:
        self.count += len(payload.encode() if isinstance(payload, str) else payload)


def notebook_cells(sizes: list[int], clicks: int, circuitsvis_render: list[int]) -> tuple[list[str], dict]:
    cells = [dedent("""\
        import json, statistics, time
        import numpy as np, torch
        from IPython.display import HTML
        import circuitsvis as cv
        import interpwidgets as iw
        def load(n):
            return torch.from_numpy(np.load(f"pattern_{n}.npy")), json.load(open(f"tokens_{n}.json"))
        try:
            model, trained = iw.load_model(device="cpu"), True
        except FileNotFoundError:
            model, trained = iw.models.build_teaching_model(seed=0), False
        task = iw.tasks.ioi(model, n=32, seed=0)
        result = iw.patching.activation_patch(model, task, site="z", progress=False)
        print("IW-SETUP", json.dumps({"trained": trained}))""")]
    index: dict = {"widget": {}, "circuitsvis": {}}
    for n in sizes:
        index["widget"][n] = len(cells)
        cells.append(f"pattern, tokens = load({n})\niw.widgets.AttentionPatterns(pattern=pattern, tokens=tokens)")
        if n in circuitsvis_render:
            index["circuitsvis"][n] = len(cells)
            cells.append(f"pattern, tokens = load({n})\nHTML(cv.attention.attention_patterns(tokens, pattern).local_src)")
    index["heatmap"] = len(cells)
    cells.append("heatmap = iw.widgets.PatchHeatmap(result, action='zero')\nheatmap")
    index["kernel"] = len(cells)
    cells.append(dedent(f"""\
        times = []
        for i in range({clicks}):
            cell = (i % model.cfg.n_layers, (i // model.cfg.n_layers) % model.cfg.n_heads)
            start = time.perf_counter()
            result.intervene([cell], ablation="zero")
            times.append(1000 * (time.perf_counter() - start))
        print("IW-KERNEL", json.dumps({{"median_ms": statistics.median(times), "times_ms": times}}))"""))
    return cells, index


def browser_measurements(sizes: list[int], clicks: int, render_timeout_s: float, circuitsvis_render: list[int]) -> dict:
    from playwright.sync_api import sync_playwright

    patterns = {n: synthetic_patterns(n) for n in sizes}
    with tempfile.TemporaryDirectory() as tmp, harness.running_server(Path(tmp)) as server, sync_playwright() as playwright:
        for n in sizes:
            np.save(server.root / f"pattern_{n}.npy", patterns[n].numpy())
            (server.root / f"tokens_{n}.json").write_text(json.dumps(tokens_for(n)))
        cells, index = notebook_cells(sizes, clicks, circuitsvis_render)
        path = server.root / "bench.ipynb"
        harness.write_notebook(path, cells)
        browser = harness.launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(int(render_timeout_s * 1000))
        frames = FrameCounter(page)
        page.goto(harness.lab_url(server, path, "bench"))
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget?.context?.sessionContext?.session")

        def measure(cell: int, kind: str) -> tuple[float | None, int]:
            frames.count = 0
            ms = page.evaluate(MEASURE_CELL, {"index": cell, "kind": kind, "timeoutMs": render_timeout_s * 1000})
            page.wait_for_timeout(500)  # let trailing status messages arrive
            return ms, frames.count

        measure(0, "cell")
        setup = harness.printed(page, "IW-SETUP", int(render_timeout_s * 1000))
        out: dict = {"trained_model": setup["trained"], "widget": {}, "circuitsvis": {}}
        for n in sizes:
            ms, received = measure(index["widget"][n], "widget")
            out["widget"][n] = {"first_render_ms": ms, "websocket_bytes": received}
            if n in index["circuitsvis"]:
                ms, received = measure(index["circuitsvis"][n], "circuitsvis")
                out["circuitsvis"][n] = {"first_render_ms": ms, "websocket_bytes": received}
        measure(index["heatmap"], "widget")
        root = page.locator(".iw-patch")
        root.locator(".iw-matrix canvas").wait_for()
        box = root.locator(".iw-matrix canvas").bounding_box()
        rows, cols = 4, 4
        latencies = []
        for i in range(clicks):
            layer, head = i % rows, (i // rows) % cols
            x = box["x"] + (head + 0.5) * box["width"] / cols
            y = box["y"] + (layer + 0.5) * box["height"] / rows
            latencies.append(page.evaluate(CLICK_CELL, {"x": x, "y": y, "label": f"L{layer}H{head}"}))
        page.screenshot(path=str(REPO / "artifacts" / "bench_widgets.png"), full_page=True)
        measure(index["kernel"], "cell")
        kernel = harness.printed(page, "IW-KERNEL", int(render_timeout_s * 1000))
        out["click_to_redraw"] = {"median_ms": statistics.median(latencies), "times_ms": latencies,
                                  "kernel_intervene_median_ms": kernel["median_ms"]}
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--render-timeout", type=float, default=240.0, help="seconds to wait for a render")
    parser.add_argument("--circuitsvis-render", type=int, nargs="*", default=[128, 512],
                        help="sizes at which circuitsvis is also rendered in the browser")
    args = parser.parse_args()

    sizes = sorted(args.sizes)
    payload = {n: widget_payload_bytes(synthetic_patterns(n), tokens_for(n)) for n in sizes}
    reference = {}
    for n in sizes:
        reference[n] = circuitsvis_html_bytes(synthetic_patterns(n), tokens_for(n))
        print(f"circuitsvis HTML at {n} tokens: {reference[n]['inline']:,} bytes", flush=True)
    browser = browser_measurements(sizes, args.clicks, args.render_timeout, [n for n in args.circuitsvis_render if n in sizes])

    rows = []
    for n in sizes:
        ours, theirs = browser["widget"][n], browser["circuitsvis"].get(n, {})
        rows.append({
            "tokens": n, "heads": HEADS,
            "widget_websocket_bytes": ours["websocket_bytes"], "widget_payload_bytes": payload[n]["first_view"],
            "widget_all_heads_payload_bytes": payload[n]["all_heads"], "widget_first_render_ms": ours["first_render_ms"],
            "circuitsvis_html_bytes_inline": reference[n]["inline"], "circuitsvis_html_bytes_cdn": reference[n]["cdn"],
            "circuitsvis_html_built": reference[n]["built"],
            "circuitsvis_websocket_bytes": theirs.get("websocket_bytes"), "circuitsvis_first_render_ms": theirs.get("first_render_ms"),
            "bytes_ratio_circuitsvis_over_widget": reference[n]["inline"] / ours["websocket_bytes"],
        })
    result = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpus": os.cpu_count(), "load_average_1min_at_end": os.getloadavg()[0]},
        "notes": "synthetic causal softmax patterns (seeded); circuitsvis HTML is its offline variant with the JS bundle "
                 "inlined (its default when offline); the CDN variant cannot render without network access. Render "
                 "times run from executing the cell to the first frame with the picture drawn (kernel time included); "
                 "null means not drawn within the timeout.",
        "attention": rows,
        "click_to_redraw": {**browser["click_to_redraw"], "model": "trained teaching model" if browser["trained_model"]
                            else "teaching architecture, random weights", "task": "IOI, 32 prompts", "action": "zero-ablate one head"},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    def mb(value: float | None) -> str:
        return "-" if value is None else f"{value / 1e6:.2f} MB"

    def ms(value: float | None) -> str:
        return "not drawn" if value is None else f"{value:.0f} ms"

    print(f"\n{'tokens':>6} | {'widget (ws)':>12} | {'circuitsvis':>12} | {'ratio':>7} | {'widget render':>13} | {'circuitsvis render':>18}")
    for row in rows:
        theirs_render = ms(row["circuitsvis_first_render_ms"]) if row["tokens"] in browser["circuitsvis"] else "not tried"
        print(f"{row['tokens']:>6} | {mb(row['widget_websocket_bytes']):>12} | {mb(row['circuitsvis_html_bytes_inline']):>12} | "
              f"{row['bytes_ratio_circuitsvis_over_widget']:>6.0f}x | {ms(row['widget_first_render_ms']):>13} | {theirs_render:>18}")
    click = result["click_to_redraw"]
    print(f"\nPatchHeatmap click -> redraw (head ablation, {click['model']}): median {click['median_ms']:.0f} ms "
          f"over {len(click['times_ms'])} clicks; the intervention alone in the kernel: {click['kernel_intervene_median_ms']:.0f} ms")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
