"""Feature labels in JupyterLab, on the teaching model and its bundled SAEs: TokenFeatures (caption and a token's
feature chips), FeatureDashboard (header), Steering (slider row) and CircuitGraph (node tooltip) show the label of
each feature they show, as the labels.json beside the dictionary's weights holds it (read in the notebook with
json, not through the widgets); screenshots in the light and dark themes."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from harness import jupyter_theme, texts, wait_idle

pytestmark = pytest.mark.browser

PROMPT = "When Mary and John went to the store, John gave a drink to"
HOOK = "blocks.1.hook_resid_post"
P = 3  # the token the test clicks

CELLS = [
    dedent(f"""\
        import json
        from pathlib import Path
        import interpwidgets as iw
        from interpwidgets.circuits import Circuit, Edge, Node
        model = iw.load_model(device="cpu")
        saes = iw.sae.pretrained(model)
        on_disk = json.loads((Path(saes[{HOOK!r}].source) / "labels.json").read_text())["labels"]
        acts = iw.sae.feature_activations(model, saes[{HOOK!r}], {PROMPT!r})[{HOOK!r}]
        F = int(acts[-1].argmax())"""),
    f"tf = iw.widgets.TokenFeatures(model, saes, {PROMPT!r}, hook={HOOK!r}, feature=F)\ntf",
    f"dash = iw.widgets.FeatureDashboard(model, saes, hook={HOOK!r}, feature=F)\ndash",
    f"steering = iw.widgets.Steering(model, saes, {PROMPT!r}, features=[({HOOK!r}, F)], max_new_tokens=4)\nsteering",
    dedent(f"""\
        node = Node(f"resid_post1/{{F}}@3", 1, "resid_post", F, 3, f"resid_post1 #{{F}} @3", 0.5, dictionary={HOOK!r})
        circuit = Circuit([node, Node("metric", 4, "metric", label="metric", effect=1.0)], [Edge(node.id, "metric", 0.5)],
                          method="atp", kinds=("resid_post",))
        graph = iw.widgets.CircuitGraph(circuit, dashboard=dash)
        graph"""),
    dedent(f"""\
        values, indices = acts[{P}].topk(12)
        chips = indices[values > 0].tolist()
        print("IW-EXPECTED", json.dumps({{"F": F, "label": on_disk[str(F)], "node": node.id,
                                          "chips": [on_disk.get(str(i), "") for i in chips]}}))"""),
]


@pytest.fixture(scope="module")
def shown(widget_page):
    def ready(root):
        root.locator(".iw-caption", has_text=re.compile(r"\u00b7 max")).wait_for()
    return widget_page("feature_labels", CELLS, ".iw-token-features", ready=ready)


def test_every_view_shows_the_label_of_the_feature_it_shows(shown, screenshot):
    page, expected, root = shown.notebook.page, shown.expected, shown.root
    label = expected["label"]
    assert root.locator(".iw-caption .iw-clerp").inner_text() == label
    root.locator(f".iw-text .iw-token[data-index='{P}']").click()
    root.locator(".iw-feature-chip").first.wait_for()
    wait_idle(root)
    assert texts(root.locator(".iw-feature-chip .iw-clerp")) == [c for c in expected["chips"] if c]
    dashboard = page.locator(".iw-dashboard").first
    dashboard.locator(".iw-dash-header .iw-clerp").wait_for()
    assert dashboard.locator(".iw-dash-header .iw-clerp").inner_text() == label
    steering = page.locator(".iw-steering").first
    assert steering.locator(".iw-row-name .iw-clerp").inner_text() == label
    graph = page.locator(".iw-circuit").first
    graph.locator(f".iw-node[data-id='{expected['node']}']").hover()
    tooltip = graph.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    assert f"label: {label}" in tooltip.inner_text()
    for suffix in ("", "_dark"):
        with jupyter_theme(page, dark=bool(suffix)):
            for name, view in (("token_features", root), ("feature_dashboard", dashboard), ("steering", steering),
                               ("circuit_graph", graph)):
                view.scroll_into_view_if_needed()
                screenshot(view, f"labels_{name}{suffix}")
