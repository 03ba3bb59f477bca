"""CircuitGraph in JupyterLab: a feature circuit from the engine drawn by layer and position, rows named by place;
hover shows node and edge values; a click ablates the node in the kernel and shows the metric before and after, as
iw.circuits.ablate_nodes gives them (mean, then zero from the ablation menu);
in "open" mode a click shows the node's feature in a linked FeatureDashboard; labels with markup stay text. On the
teaching model's IOI circuit (as 03_circuits draws it): colours mean support for the metric and the legend says so,
each position's column shows its token, no column is empty, node labels never overlap; light and dark theme."""

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
        from interpwidgets.models import build_teaching_model
        from interpwidgets.sae import SAEConfig, SAESet, build_sae
        from interpwidgets.widgets.circuit_graph import CircuitGraph
        from interpwidgets.widgets.feature_dashboard import FeatureDashboard
        model = build_teaching_model(seed=0)
        saes = SAESet.of([build_sae(SAEConfig(d_in=128, d_sae=32, architecture="topk", k=4,
                                              hook_name=f"blocks.{layer}.hook_resid_post"), seed=layer) for layer in range(4)])
        task = iw.tasks.ioi(model, n=4, seed=0)
        options = dict(method="atp", kinds=("resid_post",), edge_threshold=0.0, progress=False)
        everything = iw.circuits.feature_circuit(model, saes, task, node_threshold=0.0, edges=False, **options)
        threshold = sorted(abs(n.effect) for n in everything.nodes if n.is_feature)[-10]  # 10 features and some errors
        circuit = iw.circuits.feature_circuit(model, saes, task, node_threshold=threshold, **options)"""),
    dedent("""\
        dashboard = FeatureDashboard(model, saes, corpus=task.clean_tokens)
        graph = CircuitGraph(circuit, model=model, saes=saes, task=task, dashboard=dashboard)
        graph"""),
    "dashboard",
    # the kernel's answers for the nodes the test clicks
    dedent("""\
        features = sorted((n for n in circuit.nodes if n.is_feature), key=lambda n: -abs(n.effect))
        A = features[0]
        B = next(n for n in features[1:] if (n.layer, n.feature) != (0, 0))
        edge = max(circuit.edges, key=lambda e: abs(e.weight))
        mean, zero = (iw.circuits.ablate_nodes(model, saes, task, [A], ablation=a) for a in ("mean", "zero"))
        expected = {"n_nodes": len(circuit.nodes), "n_edges": len(circuit.edges), "before": mean.metric_clean,
                    "A": {"id": A.id, "label": A.label, "effect": A.effect, "after": mean.metric_ablated,
                          "after_zero": zero.metric_ablated},
                    "B": {"id": B.id, "label": B.label, "hook": B.dictionary, "feature": B.feature},
                    "edge": {"index": circuit.edges.index(edge), "src": circuit.node(edge.src).label,
                             "dst": circuit.node(edge.dst).label, "weight": edge.weight}}
        print("IW-EXPECTED", json.dumps(expected))"""),
    # labels are data: markup in them must show as text
    dedent("""\
        from interpwidgets.circuits import Circuit, Edge, Node
        xss = CircuitGraph(Circuit([Node("resid_post0/1@0", 0, "resid_post", 1, 0, "<img src=x onerror=alert(1)>", 0.5),
                                    Node("metric", 1, "metric", label="<b>metric</b>")],
                                   [Edge("resid_post0/1@0", "metric", 0.3)]), title="<i>xss</i>")
        xss"""),
    # the IOI core circuit of the trained teaching model with its bundled SAEs, as 03_circuits draws it
    dedent("""\
        teacher = iw.load_model(device="cpu")
        teacher_saes = iw.sae.pretrained(teacher)
        ioi = iw.tasks.ioi(teacher, n=8, seed=1)
        ioi_circuit = iw.circuits.feature_circuit(teacher, teacher_saes, ioi, method="ig", steps=3, node_threshold=0.0,
                                                  top_n=30, edge_threshold=0.01, progress=False)
        top = ioi_circuit.top(1)[0]
        shown = sorted({n.position for n in ioi_circuit.nodes if n.position is not None})
        print("IW-IOI", json.dumps({"top": {"id": top.id, "effect": top.effect},
                                    "columns": {str(p): repr(teacher.tokenizer.decode([int(ioi.clean_tokens[0, p])]))
                                                for p in shown}}))"""),
    "iw.widgets.CircuitGraph(ioi_circuit, model=teacher, saes=teacher_saes, task=ioi)",
    # a crowded cell: embeddings at adjacent positions, five-digit features side by side
    dedent("""\
        crowded = Circuit([Node(f"resid_pre0@{p}", 0, "resid_pre", None, p, f"resid_pre0 @{p}", 0.5) for p in (3, 4, 5)]
                          + [Node(f"resid_post0/{f}@4", 0, "resid_post", f, 4, f"resid_post0 #{f} @4", 0.3 * (i + 1))
                             for i, f in enumerate((12345, 23456, 34567))]
                          + [Node("metric", 1, "metric")], [])
        CircuitGraph(crowded, title="crowded")"""),
]


@pytest.fixture(scope="module")
def notebook(notebook_page):
    return notebook_page("circuit_graph", CELLS)


@pytest.fixture(scope="module")
def expected(notebook) -> dict:
    return printed(notebook.page, "IW-EXPECTED")


@pytest.fixture(scope="module")
def root(notebook, expected):
    root = notebook.page.locator(".iw-circuit").first
    root.locator(".iw-node").first.wait_for()
    return root


def node(root, node_id: str):
    return root.locator(f".iw-node[data-id='{node_id}']")


def test_renders_nodes_edges_and_legend(root, expected, screenshot):
    assert root.locator(".iw-node").count() == expected["n_nodes"]
    assert root.locator("path[data-edge]").count() == expected["n_edges"]
    assert root.locator(".iw-legend-units").inner_text() == (
        "support for the metric: -(effect of patching the node to its corrupt value)")
    assert number(root.locator(".iw-edge-max").inner_text()) == pytest.approx(abs(expected["edge"]["weight"]), rel=0.01)
    guides = root.locator(".iw-guides text").evaluate_all("els => els.map(e => e.textContent)")
    assert "metric" in guides and any(re.fullmatch(r"resid_post\d", text) for text in guides)  # rows are named by place
    screenshot(root, "circuit_graph")


def test_hover_shows_node_and_edge_values(root, expected):
    node(root, expected["A"]["id"]).hover()
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    text = tooltip.inner_text()
    assert expected["A"]["label"] in text
    assert number(re.search(r"effect: (\S+)", text).group(1)) == pytest.approx(expected["A"]["effect"], rel=0.01, abs=1e-4)
    edge = expected["edge"]
    root.locator(f"path[data-edge='{edge['index']}']").dispatch_event("mouseover")
    root.locator(".iw-tooltip", has_text="weight:").wait_for(state="visible")
    text = tooltip.inner_text()
    assert f"{edge['src']} \u2192 {edge['dst']}" in text
    assert number(re.search(r"weight: (\S+)", text).group(1)) == pytest.approx(edge["weight"], rel=0.01, abs=1e-4)


def test_click_ablates_the_node_in_the_kernel(root, expected, screenshot):
    node(root, expected["A"]["id"]).click()
    root.locator(".iw-outcome-title", has_text=f"mean-ablated {expected['A']['label']}").wait_for()
    wait_idle(root)
    assert number(root.locator(".iw-metric-before").inner_text()) == pytest.approx(expected["before"], rel=0.01, abs=1e-3)
    assert number(root.locator(".iw-metric-after").inner_text()) == pytest.approx(expected["A"]["after"], rel=0.01, abs=1e-3)
    assert "iw-ablated" in node(root, expected["A"]["id"]).get_attribute("class")
    root.locator("select[aria-label='ablation']").select_option("zero")
    node(root, expected["A"]["id"]).click()
    root.locator(".iw-outcome-title", has_text=f"zero-ablated {expected['A']['label']}").wait_for()
    wait_idle(root)
    assert number(root.locator(".iw-metric-after").inner_text()) == pytest.approx(expected["A"]["after_zero"], rel=0.01,
                                                                                  abs=1e-3)
    root.page.mouse.move(0, 0)  # the tooltip off the picture
    root.locator(".iw-tooltip").wait_for(state="hidden")
    screenshot(root, "circuit_graph_ablated")


def test_click_opens_the_feature_in_the_dashboard(notebook, root, expected):
    b = expected["B"]
    root.locator("select[aria-label='on click']").select_option("open")
    node(root, b["id"]).click()
    root.locator(".iw-opened", has_text=f"{b['hook']} \u00b7 feature {b['feature']}").wait_for()
    dashboard = notebook.page.locator(".iw-dashboard").first
    dashboard.locator(".iw-dash-title", has_text=re.compile(rf"^Feature {b['feature']}$")).wait_for()
    dashboard.locator(".iw-dash-header", has_text=f"resid_post{b['hook'].split('.')[1]}").wait_for()


def test_labels_are_text_not_markup(notebook):
    root = notebook.page.locator(".iw-circuit").nth(1)
    root.locator(".iw-node[data-id='resid_post0/1@0']").hover()
    root.locator(".iw-tooltip", has_text="<img src=x onerror=alert(1)>").wait_for(state="visible")
    assert root.locator(".iw-title").inner_text() == "<i>xss</i>"
    assert root.locator("img, b, i").count() == 0 and notebook.dialogs == []


@pytest.fixture(scope="module")
def ioi(notebook) -> dict:
    return printed(notebook.page, "IW-IOI")


@pytest.fixture(scope="module")
def ioi_root(notebook, ioi):
    root = notebook.page.locator(".iw-circuit").nth(2)
    root.scroll_into_view_if_needed()
    root.locator(".iw-node").first.wait_for()
    return root


def test_colours_mean_support_and_the_legend_says_so(ioi_root, ioi):
    """The IOI circuit's strongest node (the first name's embedding, whose ablation lowers the metric: its effect is
    negative) is drawn in the "supports" colour, and the legend names both ends in words."""
    assert ioi_root.locator(".iw-supports").inner_text() == "supports the metric (ablating it lowers the metric)"
    assert ioi_root.locator(".iw-opposes").inner_text() == "opposes the metric (ablating it raises the metric)"
    assert ioi["top"]["effect"] < 0
    supports = ioi_root.locator(".iw-colour-key .iw-swatch").first.evaluate("el => getComputedStyle(el).backgroundColor")
    assert node(ioi_root, ioi["top"]["id"]).get_attribute("fill") == supports


def test_each_column_shows_its_position_and_token_and_none_is_empty(ioi_root, ioi):
    text = "els => els.map(e => e.textContent)"  # SVG text has no innerText
    positions = ioi_root.locator(".iw-col-position").evaluate_all(text)
    tokens = ioi_root.locator(".iw-col-token").evaluate_all(text)
    assert positions == [f"@{p}" for p in ioi["columns"]]  # no "all pos." column: every node has a position
    assert tokens == list(ioi["columns"].values())


OVERLAPS = """(root) => {
  const boxes = [...root.querySelectorAll(".iw-node-label, .iw-guides text")]
    .filter((el) => el.textContent).map((el) => [el.textContent, el.getBoundingClientRect()]);
  const hits = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, p] = boxes[i], [b, q] = boxes[j];
    if (p.left < q.right && q.left < p.right && p.top < q.bottom && q.top < p.bottom) hits.push(`${a} / ${b}`);
  }
  return [boxes.length, hits];
}"""


def test_no_two_labels_overlap(notebook, ioi_root, screenshot):
    """Node labels and column labels: no two bounding boxes intersect, on the IOI circuit and on a crowded one."""
    count, hits = ioi_root.evaluate(OVERLAPS)
    assert count > 30 and hits == []
    ioi_root.page.mouse.move(0, 0)
    screenshot(ioi_root, "circuit_graph_ioi")
    crowded = notebook.page.locator(".iw-circuit").nth(3)
    crowded.scroll_into_view_if_needed()
    crowded.locator(".iw-node").first.wait_for()
    count, hits = crowded.evaluate(OVERLAPS)
    assert count >= 9 and hits == [], f"overlapping labels: {hits}"


def test_dark_theme(notebook, ioi_root, screenshot):
    page = notebook.page
    with jupyter_theme(page, dark=True):
        page.wait_for_timeout(500)
        ioi_root.scroll_into_view_if_needed()
        screenshot(ioi_root, "circuit_graph_ioi_dark")
