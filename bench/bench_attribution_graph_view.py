"""Benchmark: AttributionGraphView's transport and drawing, in a real JupyterLab + Chromium.

Measures
  - bytes sent for the teaching model's IOI attribution graph and for a synthetic graph of 5,000 nodes and
    100,000 edges: the widget's state as the kernel sends it (JSON + binary buffers), next to the graph's own JSON
    (`to_json`, what a file or circuit-tracer-style export of the whole graph weighs);
  - frame time while a slider moves and while the pointer hovers, on both graphs in Chromium: per slider step, the
    main thread's time to re-prune (the input handler) plus lay out and draw in the animation frame, the canvas
    rasterised (a 1-pixel read-back forces it); per hover, the pointer handler (hit test, tooltip, overlay) with its
    raster; medians and 95th percentiles, and the shown node / edge counts;
  - the kernel's time for one faithfulness step on the teaching model (the widget's own `ms`, over `--steps`
    prunings of the slider's range; target <= 300 ms), with the torch thread count and the machine's load.
Prints a table and writes bench/results/attribution_graph_view.json.

    python bench/bench_attribution_graph_view.py [--steps 12] [--hovers 60]
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
RESULTS = REPO / "bench" / "results" / "attribution_graph_view.json"
PROMPT = "When Mary and John went to the store, John gave a drink to"
sys.path.insert(0, str(REPO / "tests" / "browser"))


def synthetic_graph(n_nodes: int = 5000, n_edges: int = 100_000, n_layers: int = 4, seq: int = 20, seed: int = 0):
    """A random attribution graph of `n_nodes` (20 token embeddings, an error per layer and position, one logit
    target, features for the rest at random layers and positions) and `n_edges` distinct edges that only go up the
    layers, every feature with an input and an output; heavy-tailed signed weights."""
    from interpwidgets.circuits import influence as inf
    from interpwidgets.circuits.attribution_graph import AttributionGraph
    from interpwidgets.circuits.graph import Node, node_id

    rng = np.random.default_rng(seed)
    nodes, rows, types = [], [], []
    for p in range(seq):
        nodes.append(Node(node_id("embed", 0, None, p), 0, "embed", None, p, f"embed @{p}"))
        rows.append(0)
        types.append(inf.TOKEN)
    for layer in range(n_layers):
        for p in range(seq):
            nodes.append(Node(node_id("mlp", layer, "error", p), layer, "mlp", "error", p, f"mlp{layer} error @{p}"))
            rows.append(layer + 1)
            types.append(inf.ERROR)
    n_features = n_nodes - len(nodes) - 1
    layers, positions = rng.integers(0, n_layers, n_features), rng.integers(0, seq, n_features)
    for k, (layer, p) in enumerate(zip(layers.tolist(), positions.tolist())):
        nodes.append(Node(node_id("mlp", layer, k, p), layer, "mlp", k, p, f"mlp{layer} #{k} @{p}", activation=1.0))
        rows.append(layer + 1)
        types.append(inf.FEATURE)
    nodes.append(Node(node_id("logit", None, 7, seq - 1), n_layers, "logit", 7, seq - 1, "logit #7"))
    rows.append(n_layers + 1)
    types.append(inf.LOGIT)
    rows_a = np.array(rows)
    by_row = [np.flatnonzero(rows_a == r) for r in range(n_layers + 2)]
    below = [np.concatenate([np.zeros(0, dtype=int), *by_row[:r]]) for r in range(n_layers + 2)]
    above = [np.concatenate([np.zeros(0, dtype=int), *by_row[r + 1:]]) for r in range(n_layers + 2)]
    pairs: set[tuple[int, int]] = set()
    for i in np.flatnonzero(np.array(types) == inf.FEATURE).tolist():  # an input and an output for each feature
        pairs.add((int(rng.choice(below[rows[i]])), i))
        pairs.add((i, int(rng.choice(above[rows[i]]))))
    sources = np.flatnonzero(rows_a <= n_layers)
    while len(pairs) < n_edges:
        s = rng.choice(sources, 4096)
        for a in s.tolist():
            pairs.add((a, int(rng.choice(above[rows[a]]))))
            if len(pairs) >= n_edges:
                break
    ordered = sorted(pairs, key=lambda e: (e[1], e[0]))
    src = torch.tensor([a for a, _ in ordered])
    dst = torch.tensor([b for _, b in ordered])
    weight = torch.tensor(rng.normal(size=len(ordered)) * np.exp(rng.normal(size=len(ordered))), dtype=torch.float32)
    n = len(nodes)
    logit_weights = torch.zeros(n)
    logit_weights[-1] = 1.0
    return AttributionGraph(nodes, torch.tensor(types, dtype=torch.int8), src, dst, weight, torch.full((n,), float("nan")),
                            torch.zeros(n), logit_weights, {"prompt_tokens": [f" w{p}" for p in range(seq)], "n_layers": n_layers})


def sent_bytes(view) -> dict[str, int]:
    """The widget's state as the kernel sends it: JSON text and binary buffers."""
    from ipywidgets.widgets.widget import _remove_buffers

    state, _, buffers = _remove_buffers(view.get_state())
    return {"json": len(json.dumps(state)), "buffers": sum(len(b) for b in buffers)}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(values), "p95_ms": percentile(values, 95), "n": len(values)}


# In the page: one slider step (input event -> re-prune; the animation frame lays out and draws) and one hover.
SLIDER_STEP = """async ({index, label, value}) => {
  const root = document.querySelectorAll(".iw-agraph")[index];
  const input = root.querySelector(`input[aria-label='${label}']`);
  const picture = root.querySelector(".iw-ag-picture");
  const start = performance.now();
  input.value = String(value);
  input.dispatchEvent(new Event("input", { bubbles: true }));
  const pruned = performance.now();
  const frame = await new Promise((resolve) => requestAnimationFrame((ts) => {
    picture.getContext("2d").getImageData(0, 0, 1, 1);
    resolve([ts, performance.now()]);
  }));
  return { prune_ms: pruned - start, frame_ms: (pruned - start) + Math.max(0, frame[1] - Math.max(frame[0], pruned)),
           latency_ms: frame[1] - start, nodes: root.querySelector(".iw-ag-n-nodes").textContent,
           edges: root.querySelector(".iw-ag-n-edges").textContent };
}"""
HOVER = """({index, id}) => {
  const root = document.querySelectorAll(".iw-agraph")[index];
  root.dispatchEvent(new CustomEvent("iw-where", { detail: { id } }));
  if (!root.dataset.where) return null;
  const [x, y] = root.dataset.where.split(",").map(Number);
  const overlay = root.querySelector(".iw-ag-overlay");
  const box = overlay.getBoundingClientRect();
  const start = performance.now();
  overlay.dispatchEvent(new MouseEvent("mousemove", { clientX: box.left + x, clientY: box.top + y, bubbles: true }));
  overlay.getContext("2d").getImageData(0, 0, 1, 1);
  return performance.now() - start;
}"""


def notebook_cells() -> list[str]:
    return [
        dedent(f"""\
            import json, sys, time, torch
            import interpwidgets as iw
            from interpwidgets.widgets.attribution_graph import AttributionGraphView
            sys.path.insert(0, {str(REPO / 'bench')!r})
            from bench_attribution_graph_view import synthetic_graph
            model = iw.load_model(device="cpu")
            g = iw.circuits.attribution_graph(model, iw.sae.pretrained(model), {PROMPT!r}, progress=False)
            big = synthetic_graph()
            teaching = AttributionGraphView(g)
            synthetic = AttributionGraphView(big, max_node_threshold=1.0, node_threshold=1.0, edge_threshold=1.0)
            ids = lambda view, p: [view.graph.nodes[i].id for i in p.node_mask.nonzero()[:, 0].tolist()]
            print("IW-IDS", json.dumps({{"teaching": ids(teaching, g.prune(0.8, 0.98)), "synthetic": ids(synthetic, big.prune(1.0, 1.0))}}))"""),
        "teaching",
        "synthetic",
    ]


def browser_measurements(steps: int, hovers: int) -> dict:
    from playwright.sync_api import sync_playwright

    harness = importlib.import_module("harness")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, harness.running_server(Path(tmp)) as server, sync_playwright() as playwright:
        path = server.root / "bench_graph.ipynb"
        harness.write_notebook(path, notebook_cells())
        browser = harness.launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(300_000)
        harness.open_and_run(page, harness.lab_url(server, path, "bench"), path.name)
        ids = harness.printed(page, "IW-IDS")
        roots = page.locator(".iw-agraph")
        roots.nth(1).locator(".iw-ag-overlay").wait_for()
        out = {}
        for index, name, start in ((0, "teaching", (0.8, 0.98)), (1, "synthetic", (1.0, 1.0))):
            roots.nth(index).scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            out[name] = {}
            for label, begin in (("node threshold", start[0]), ("edge threshold", start[1])):
                frames = []
                for k in range(1, steps + 1):  # slide down a step at a time, then back up
                    value = round(begin - 0.01 * (k if k <= steps // 2 else steps - k), 2)
                    frames.append(page.evaluate(SLIDER_STEP, {"index": index, "label": label, "value": value}))
                out[name][label.replace(" ", "_")] = {
                    "frame": summary([f["frame_ms"] for f in frames]),
                    "prune": summary([f["prune_ms"] for f in frames]),
                    "latency_to_painted": summary([f["latency_ms"] for f in frames]),
                    "shown_nodes_median": statistics.median(int(f["nodes"].replace(",", "")) for f in frames),
                    "shown_edges_median": statistics.median(int(f["edges"].replace(",", "")) for f in frames),
                }
            sample = [ids[name][i] for i in rng.choice(len(ids[name]), min(hovers, len(ids[name])), replace=False)]
            hover = [ms for ms in (page.evaluate(HOVER, {"index": index, "id": node}) for node in sample) if ms is not None]
            out[name]["hover_frame"] = summary(hover)
        page.screenshot(path=str(REPO / "artifacts" / "bench_attribution_graph_view.png"), full_page=True)
        browser.close()
    return out


def kernel_faithfulness(steps: int) -> dict:
    """The widget's own timing of `graph.faithfulness` for prunings across the slider's range (teaching IOI graph)."""
    import interpwidgets as iw
    from interpwidgets.widgets.attribution_graph import AttributionGraphView
    from interpwidgets.widgets.testing import ask

    model = iw.load_model(device="cpu")
    g = iw.circuits.attribution_graph(model, iw.sae.pretrained(model), PROMPT, progress=False)
    view = AttributionGraphView(g)
    times = []
    thresholds = np.linspace(0.5, 0.95, steps).round(2).tolist()
    for t in thresholds:
        kept = g.prune(t, 0.98).node_mask.nonzero()[:, 0].tolist()
        ok, reply = ask(view, "faithfulness", nodes=kept, ablation="zero")
        if not ok:
            raise RuntimeError(reply)
        times.append(reply["ms"])
    return {**summary(times), "thresholds": thresholds, "torch_threads": torch.get_num_threads(),
            "graph": {"nodes": len(g), "edges": len(g.src)}, "sent": sent_bytes(view), "graph_json_bytes": len(g.to_json())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="slider steps per slider and graph")
    parser.add_argument("--hovers", type=int, default=60, help="nodes hovered per graph")
    args = parser.parse_args()
    from interpwidgets.models.files import write_text_atomic
    from interpwidgets.widgets.attribution_graph import AttributionGraphView

    big = synthetic_graph()
    synthetic_view = AttributionGraphView(big, max_node_threshold=1.0, node_threshold=1.0, edge_threshold=1.0)
    synthetic = {"graph": {"nodes": len(big), "edges": len(big.src)}, "sent": sent_bytes(synthetic_view),
                 "graph_json_bytes": len(big.to_json())}
    kernel = kernel_faithfulness(args.steps)
    browser = browser_measurements(args.steps, args.hovers)
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "teaching_ioi": {"graph": kernel.pop("graph"), "sent": kernel.pop("sent"), "graph_json_bytes": kernel.pop("graph_json_bytes"),
                         "browser": browser["teaching"]},
        "synthetic_5000_100000": {**synthetic, "browser": browser["synthetic"]},
        "faithfulness_step_kernel": kernel,
    }
    write_text_atomic(RESULTS, json.dumps(result, indent=2) + "\n")

    def kb(sent: dict) -> str:
        return f"{(sent['json'] + sent['buffers']) / 1e3:,.0f} KB ({sent['json'] / 1e3:,.0f} JSON + {sent['buffers'] / 1e3:,.0f} binary)"

    print(f"{'graph':<24} {'nodes / edges':>18} {'sent':>36} {'graph JSON':>12}")
    rows = (("teaching IOI", result["teaching_ioi"]), ("synthetic 5,000/100,000", result["synthetic_5000_100000"]))
    for name, row in rows:
        print(f"{name:<24} {row['graph']['nodes']:>8,} / {row['graph']['edges']:>9,} {kb(row['sent']):>36} "
              f"{row['graph_json_bytes'] / 1e6:>9.1f} MB")
    print(f"\n{'graph':<24} {'moving':<16} {'frame median / p95':>20} {'of which pruning':>17} {'shown nodes / edges':>21}")
    for name, row in rows:
        b = row["browser"]
        for moving in ("node_threshold", "edge_threshold"):
            m = b[moving]
            print(f"{name:<24} {moving.replace('_', ' '):<16} {m['frame']['median_ms']:>10.1f} / {m['frame']['p95_ms']:>5.1f} ms "
                  f"{m['prune']['median_ms']:>14.1f} ms {m['shown_nodes_median']:>9,.0f} / {m['shown_edges_median']:>9,.0f}")
        print(f"{name:<24} {'hover':<16} {b['hover_frame']['median_ms']:>10.2f} / {b['hover_frame']['p95_ms']:>5.2f} ms")
    print(f"faithfulness step in the kernel (teaching IOI, {kernel['n']} prunings, {kernel['torch_threads']} torch threads, "
          f"load {result['machine']['load_average'][0]:.1f}): median {kernel['median_ms']:.0f} ms, p95 {kernel['p95_ms']:.0f} ms "
          "(target <= 300 ms)")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
