"""AttributionGraphView in JupyterLab on the teaching model's IOI attribution graph: moving the sliders (arrow keys)
re-prunes in the browser to exactly graph.prune's node and edge counts and the kernel's faithfulness of what is
shown appears; hovering a node (a real pointer over the canvas) shows its label and clerp; shift-clicking two nodes
and naming them groups a supernode the kernel keeps in graph.supernodes, drawn as one node whose tooltip lists them;
clicking a node in "ablate" mode shows the target before and after as graph.intervene computes it. Light and dark
screenshots. One notebook."""

from __future__ import annotations

import json
from textwrap import dedent

import pytest
from harness import EXECUTE, jupyter_theme, number, wait_idle

pytestmark = pytest.mark.browser

CELLS = [
    dedent("""\
        import json
        import interpwidgets as iw
        from interpwidgets.widgets.attribution_graph import AttributionGraphView
        model = iw.load_model(device="cpu")
        saes = iw.sae.pretrained(model)
        g = iw.circuits.attribution_graph(model, saes, "When Mary and John went to the store, John gave a drink to",
                                          progress=False)
        view = AttributionGraphView(g)
        view"""),
    dedent("""\
        steps = [(0.8, 0.98), (0.6, 0.98), (0.6, 0.9)]
        prunings = [g.prune(t, e) for t, e in steps]
        kept = set.intersection(*(set(p.node_ids) for p in prunings))
        features = sorted((i for i in kept if g.node_type[g.index(i)] == 0), key=lambda i: -float(prunings[0].influence[g.index(i)]))
        A, B, C = features[:3]
        ablated = g.intervene({A: 0.0})
        target = g.logit_nodes[0].id
        label = lambda i: g.node(i).label
        expected = {
            "steps": [{"nodes": p.n_nodes, "edges": p.n_edges, "faithfulness": g.faithfulness(p).faithfulness} for p in prunings],
            "A": {"id": A, "label": label(A), "clerp": saes[g.node(A).dictionary].labels.get(g.node(A).feature, ""),
                  "before": ablated.targets_before[target], "after": ablated.targets_after[target]},
            "B": {"id": B, "label": label(B)}, "C": {"id": C, "label": label(C)},
            "target": g.node(target).label}
        print("IW-EXPECTED", json.dumps(expected))"""),
]


@pytest.fixture(scope="module")
def shown(widget_page):
    return widget_page("attribution_graph", CELLS, ".iw-agraph",
                       ready=lambda root: root.locator(".iw-ag-faith-detail", has_text="ms").wait_for())


def where(root, node_id: str) -> dict | None:
    """The overlay position of a drawn node or supernode (the view's iw-where scripting hook); None if not drawn."""
    root.evaluate("(el, id) => el.dispatchEvent(new CustomEvent('iw-where', {detail: {id}}))", node_id)
    found = root.get_attribute("data-where")
    if not found:
        return None
    x, y = (float(v) for v in found.split(","))
    return {"x": x, "y": y}


def faithfulness_shown(root) -> float:
    root.locator(".iw-ag-faith-detail", has_text="ms").wait_for()
    wait_idle(root)
    return number(root.locator(".iw-ag-faith-value").inner_text())


def counts(root) -> tuple[int, int]:
    return (int(root.locator(".iw-ag-n-nodes").inner_text().replace(",", "")),
            int(root.locator(".iw-ag-n-edges").inner_text().replace(",", "")))


def test_sliders_reprune_exactly_and_the_kernel_measures_faithfulness(shown, screenshot):
    root, expected = shown.root, shown.expected
    page = shown.notebook.page
    first, *rest = expected["steps"]
    assert counts(root) == (first["nodes"], first["edges"])
    assert faithfulness_shown(root) == pytest.approx(first["faithfulness"], abs=1e-3)
    assert "zero ablation" in root.locator(".iw-ag-faith-detail").inner_text()
    screenshot(root, "attribution_graph")
    for slider, presses, step in (("node threshold", 20, rest[0]), ("edge threshold", 8, rest[1])):
        handle = root.locator(f"input[aria-label='{slider}']")
        handle.focus()
        for _ in range(presses):
            handle.press("ArrowLeft")
        root.locator(".iw-ag-n-nodes", has_text=f"{step['nodes']:,}").wait_for()
        assert counts(root) == (step["nodes"], step["edges"])
        assert faithfulness_shown(root) == pytest.approx(step["faithfulness"], abs=1e-3)
    # what the browser kept is exactly what graph.prune keeps at the thresholds the sliders wrote
    out = page.evaluate(EXECUTE, "print(json.dumps([view.node_threshold, view.edge_threshold, view.shown_nodes == "
                                 "view.pruning().node_ids == g.prune(0.6, 0.9).node_ids]))")
    assert json.loads(out) == [0.6, 0.9, True]


def test_hover_shows_the_nodes_label_and_clerp(shown):
    root, a = shown.root, shown.expected["A"]
    root.locator(".iw-ag-overlay").hover(position=where(root, a["id"]))
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    text = tooltip.inner_text()
    assert a["label"] in text and f"id {a['id']}" in text and "influence:" in text and "top activations:" in text
    assert a["clerp"] and a["clerp"] in text


def test_two_nodes_shift_clicked_and_named_become_a_supernode_in_the_kernel(shown, screenshot):
    root, expected = shown.root, shown.expected
    page = shown.notebook.page
    overlay = root.locator(".iw-ag-overlay")
    for node in ("B", "C"):
        overlay.click(position=where(root, expected[node]["id"]), modifiers=["Shift"])
    root.locator(".iw-ag-selected", has_text="2 selected").wait_for()
    root.locator("input[aria-label='supernode name']").fill("name movers")
    root.locator(".iw-ag-group").click()
    root.locator(".iw-ag-supernode[data-name='name movers']").wait_for()
    wait_idle(root)
    out = page.evaluate(EXECUTE, "print(json.dumps(g.supernodes))")
    assert json.loads(out) == {"name movers": [expected["B"]["id"], expected["C"]["id"]]}
    assert where(root, expected["B"]["id"]) is None  # drawn as the supernode now
    overlay.hover(position=where(root, "name movers"))
    tooltip = root.locator(".iw-tooltip", has_text="supernode name movers")
    tooltip.wait_for(state="visible")
    assert expected["B"]["label"] in tooltip.inner_text() and expected["C"]["label"] in tooltip.inner_text()
    screenshot(root, "attribution_graph_supernode")


def test_click_ablates_the_node_in_the_kernel(shown, screenshot):
    root, a = shown.root, shown.expected["A"]
    root.locator("select[aria-label='on click']").select_option("ablate")
    root.locator(".iw-ag-overlay").click(position=where(root, a["id"]))
    root.locator(".iw-outcome-title", has_text=f"ablated {a['label']}").wait_for()
    wait_idle(root)
    assert root.locator(".iw-outcome .iw-hint", has_text="attention frozen \u00b7 unconstrained").count() == 1
    assert number(root.locator(".iw-metric-before").inner_text()) == pytest.approx(a["before"], rel=5e-3)  # 3 significant digits
    assert number(root.locator(".iw-metric-after").inner_text()) == pytest.approx(a["after"], rel=5e-3)
    assert root.locator(".iw-code-text", has_text=f"g.intervene({{'{a['id']}': 0.0}}").count() == 1
    root.page.mouse.move(0, 0)
    screenshot(root, "attribution_graph_ablated")


def test_dark_theme(shown, screenshot):
    page, root = shown.notebook.page, shown.root
    with jupyter_theme(page, dark=True):
        page.wait_for_timeout(500)
        screenshot(root, "attribution_graph_dark")
