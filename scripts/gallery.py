"""Screenshots of the feature widgets for the README gallery: the bundled teaching model and SAEs, in a real
JupyterLab and Chromium (the browser tests' harness).

    python scripts/gallery.py [--out docs/screenshots]

One notebook shows TokenFeatures, FeatureDashboard, Steering, CircuitGraph and Explorer on an IOI prompt;
the script clicks where a user would (the intervention button, a circuit node), waits until the kernel's
answer is drawn and saves one PNG per widget. The feature shown is the residual-stream feature of layer 2
that fires most strongly on the prompt's last token.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path
from textwrap import dedent

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "browser"))
harness = importlib.import_module("harness")

CELLS = [
    dedent("""\
        import torch
        import interpwidgets as iw
        from interpwidgets.widgets import CircuitGraph, Explorer, FeatureDashboard, Steering, TokenFeatures
        model = iw.load_model(device="cpu")
        saes = iw.sae.pretrained(model)
        HOOK, PROMPT = "blocks.2.hook_resid_post", "When Mary and John went to the store, John gave a drink to"
        acts = iw.sae.feature_activations(model, saes[HOOK], PROMPT).acts
        FEATURE = int(acts[-1].argmax())
        task = iw.tasks.ioi(model, n=16, seed=1)
        circuit = iw.circuits.feature_circuit(model, saes, task, method="ig", steps=5, kinds=("resid",), node_threshold=0.0,
                                              top_n=24, edge_threshold=0.02, progress=False)
        STRONGEST = max((n for n in circuit.nodes if n.is_feature), key=lambda n: abs(n.effect)).id"""),
    "TokenFeatures(model, saes, PROMPT, hook=HOOK, feature=FEATURE, action='ablate')",
    "FeatureDashboard(model, saes, feature=FEATURE, hook=HOOK)",
    "Steering(model, saes, 'When Mary and John went to the store,', features=[(HOOK, FEATURE)])",
    "CircuitGraph(circuit, model=model, saes=saes, task=task)",
    "Explorer(model, saes, PROMPT, hook=HOOK, feature=FEATURE)",
    "print('IW-STRONGEST', STRONGEST)",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, harness.running_server(Path(tmp)) as server, sync_playwright() as playwright:
        path = server.root / "gallery.ipynb"
        harness.write_notebook(path, CELLS)
        browser = harness.launch_chromium(playwright)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(harness.RUN_TIMEOUT_MS)
            harness.open_and_run(page, harness.lab_url(server, path, "gallery"), path.name)
            strongest = page.locator(".jp-OutputArea-output", has_text="IW-STRONGEST")
            strongest.wait_for()
            node_id = strongest.inner_text().split("IW-STRONGEST", 1)[1].strip()
            page.mouse.move(0, 0)

            tokens = page.locator(".iw-token-features").first
            harness.wait_idle(tokens)
            tokens.locator(".iw-apply").click()
            tokens.locator(".iw-outcome-title").wait_for()
            harness.wait_idle(tokens)
            tokens.screenshot(path=str(args.out / "token_features.png"))

            dashboard = page.locator(".iw-dashboard").first
            dashboard.locator(".iw-example").first.wait_for()
            harness.wait_idle(dashboard)
            dashboard.screenshot(path=str(args.out / "feature_dashboard.png"))

            steering = page.locator(".iw-steering").first
            harness.wait_idle(steering)
            steering.locator(".iw-slider[data-index='0']").evaluate(
                "el => { el.value = el.max / 2; el.dispatchEvent(new Event('input')); }")
            steering.locator(".iw-description", has_text="\u00d7").wait_for()
            harness.wait_idle(steering)
            steering.screenshot(path=str(args.out / "steering.png"))

            graph = page.locator(".iw-circuit").first
            node = graph.locator(f".iw-node[data-id='{node_id}']")
            node.click()
            graph.locator(".iw-outcome-title").wait_for()
            harness.wait_idle(graph)
            page.mouse.move(0, 0)
            graph.locator(".iw-tooltip").wait_for(state="hidden")
            graph.screenshot(path=str(args.out / "circuit_graph.png"))

            explorer = page.locator(".widget-vbox").first
            harness.wait_idle(explorer.locator(".iw-token-features").first)
            explorer.screenshot(path=str(args.out / "explorer.png"))
        finally:
            browser.close()
    print(f"wrote 5 screenshots to {args.out}")


if __name__ == "__main__":
    main()
