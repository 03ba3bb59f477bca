"""CircuitGraph: the circuit as arrays, the menus' choices as read-only traits, node ablation through the engine
with the `ablation` trait's choice, opening a node's feature in a dashboard, request checks, pruning, and the
static preview."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits import Circuit, Edge, Node
from interpwidgets.circuits.faithfulness import ablate_nodes
from interpwidgets.sae import FeatureLabels, SAEConfig, SAESet, build_sae
from interpwidgets.widgets.circuit_graph import MAX_NODES, CircuitGraph
from interpwidgets.widgets.feature_dashboard import FeatureDashboard
from interpwidgets.widgets.testing import ask, decode_array, decode_int32


def resid(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


@pytest.fixture(scope="module")
def saes():
    return SAESet.of([
        build_sae(SAEConfig(d_in=128, d_sae=32, architecture="topk", k=4, hook_name=resid(layer)), seed=layer)
        for layer in range(4)
    ])


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=4, seed=0)


@pytest.fixture(scope="module")
def circuit() -> Circuit:
    nodes = [
        Node("resid_pre0@1", 0, "resid_pre", None, 1, "resid_pre0 @1", 0.2),
        Node("resid_post0/error@2", 0, "resid_post", "error", 2, "resid_post0 error @2", -0.1, dictionary=resid(0)),
        Node("resid_post1/5@3", 1, "resid_post", 5, 3, "resid_post1 #5 @3", 0.8, activation=1.5, dictionary=resid(1)),
        Node("resid_post2/7@4", 2, "resid_post", 7, 4, "resid_post2 #7 @4", -0.4, dictionary=resid(2)),
        Node("resid_post3/1", 3, "resid_post", 1, None, "resid_post3 #1", 0.3, dictionary=resid(3)),
        Node("metric", 4, "metric", label="ioi", effect=-1.0),
    ]
    edges = [Edge("resid_pre0@1", "resid_post1/5@3", 0.5), Edge("resid_post0/error@2", "resid_post1/5@3", -0.2),
             Edge("resid_post1/5@3", "resid_post2/7@4", 0.3), Edge("resid_post2/7@4", "metric", -0.6),
             Edge("resid_post3/1", "metric", 0.1)]
    return Circuit(nodes, edges, {"task": "ioi", "n_layers": 4}, method="atp", kinds=("resid_post",))


@pytest.fixture
def graph(random_model, saes, task, circuit):
    return CircuitGraph(circuit, model=random_model, saes=saes, task=task)


def test_nodes_and_edges_travel_as_arrays(graph, circuit):
    nodes, edges = graph.nodes, graph.edges
    assert nodes["ids"] == [n.id for n in circuit.nodes] and nodes["kinds"][0] == "resid_pre"
    assert nodes["places"] == ["resid_pre0", "resid_post0", "resid_post1", "resid_post2", "resid_post3", "metric"]
    assert decode_int32(nodes["layer"]).tolist() == [0, 0, 1, 2, 3, 4]
    assert decode_int32(nodes["position"]).tolist() == [1, 2, 3, 4, -1, -1]
    assert decode_int32(nodes["feature"]).tolist() == [-1, -1, 5, 7, 1, -1]
    assert nodes["features"] == ["", "error", "", "", "", ""]
    np.testing.assert_allclose(decode_array(nodes["effect"]), [0.2, -0.1, 0.8, -0.4, 0.3, -1.0], rtol=1e-3)
    activation = decode_array(nodes["activation"])
    assert activation[2] == pytest.approx(1.5) and np.isnan(activation[[0, 1, 3, 4, 5]]).all()
    assert decode_int32(edges["src"]).tolist() == [0, 1, 2, 3, 4]
    assert decode_int32(edges["dst"]).tolist() == [2, 2, 3, 5, 5]
    np.testing.assert_allclose(decode_array(edges["weight"]), [0.5, -0.2, 0.3, -0.6, 0.1], rtol=1e-3)


def test_menus_and_the_row_order_come_from_python_as_read_only_traits(graph):
    assert graph.actions == {"ablate": "ablate the node"} and graph.action == "ablate"
    assert set(graph.ablations) == {"zero", "mean"} and graph.ablation == "mean"
    order = graph.kind_order
    assert order["resid_pre"] < order["attn"] < order["mlp"] < order["resid_post"] < order["metric"]
    assert all(graph.traits()[name].read_only for name in ("actions", "ablations", "kind_order"))


@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_the_ablate_request_reads_the_ablation_trait_and_answers_with_the_engines_result(
        random_model, saes, task, circuit, graph, ablation):
    graph.ablation = ablation
    ok, result = ask(graph, "ablate", node="resid_post2/7@4")
    assert ok, result
    expected = ablate_nodes(random_model, saes, task, [circuit.node("resid_post2/7@4")], ablation=ablation)
    assert result.pop("code") == graph.history[-1].snippet  # copy as code: tests/unit/test_widgets_history.py
    assert result == {"node": "resid_post2/7@4", "label": "resid_post2 #7 @4", "clerp": "", "ablation": ablation,
                      "metric_before": pytest.approx(expected.metric_clean), "metric_after": pytest.approx(expected.metric_ablated)}


def test_the_front_end_may_set_only_a_known_ablation(graph):
    graph.set_state({"ablation": "zero"})
    assert graph.ablation == "zero"
    graph.set_state({"ablation": "resample"})
    assert graph.ablation == "zero"
    graph.set_state({"kind_order": {}})
    assert graph.kind_order["metric"] > 0


@pytest.mark.parametrize(
    ("method", "params", "complaint"),
    [
        ("ablate", {"node": "metric"}, "metric node cannot be ablated"),
        ("ablate", {"node": "resid_post9/1@1"}, "node must be the id of a node"),
        ("ablate", {"node": 3}, "node must be the id of a node"),
        ("ablate", {"node": "resid_post1/5@3", "ablation": "zero"}, "unexpected parameters"),
        ("open", {"node": "resid_post1/5@3"}, "no dashboard is attached"),
    ],
)
def test_bad_requests_are_refused(graph, method, params, complaint):
    ok, error = ask(graph, method, **params)
    assert not ok and complaint in error


def test_open_shows_the_feature_in_the_dashboard_and_callbacks(random_model, saes, circuit):
    dashboard = FeatureDashboard(random_model, saes, corpus=torch.zeros(2, 4, dtype=torch.long))
    graph = CircuitGraph(circuit, dashboard=dashboard)
    opened = []
    graph.on_open(opened.append)
    assert graph.actions == {"open": "open in the dashboard"}
    ok, result = ask(graph, "open", node="resid_post2/7@4")
    assert ok and result.pop("code") == graph.history[-1].snippet
    assert result == {"node": "resid_post2/7@4", "label": "resid_post2 #7 @4", "clerp": "", "hook": "blocks.2.hook_resid_post",
                             "feature": 7}
    assert (dashboard.hook, dashboard.feature) == ("blocks.2.hook_resid_post", 7)
    assert [node.id for node in opened] == ["resid_post2/7@4"]
    ok, error = ask(graph, "open", node="resid_post0/error@2")
    assert not ok and "is not an SAE feature" in error
    ok, error = ask(graph, "ablate", node="resid_post1/5@3")
    assert not ok and "needs the model, SAEs and task" in error


def test_linear_graph_nodes_open_the_transcoder_they_name(random_model):
    transcoder = build_sae(SAEConfig(d_in=128, d_sae=16, architecture="relu", hook_name="blocks.1.ln2.hook_normalized",
                                     hook_name_out="blocks.1.hook_mlp_out"), seed=0)
    mlp_sae = build_sae(SAEConfig(d_in=128, d_sae=16, architecture="relu", hook_name="blocks.1.hook_mlp_out"), seed=1)
    circuit = Circuit([Node("mlp1/3@2", 1, "mlp", 3, 2, "mlp1 #3", 1.0, dictionary="blocks.1.ln2.hook_normalized"),
                       Node("metric", 4, "metric", effect=1.0)],
                      [Edge("mlp1/3@2", "metric", 1.0)], method="linear_graph")
    graph = CircuitGraph(circuit, model=random_model, saes=[transcoder, mlp_sae], task=object())
    graph.on_open(lambda node: None)
    assert graph.feature_of("mlp1/3@2") == ("blocks.1.ln2.hook_normalized", 3)
    assert list(graph.actions) == ["open"]
    ok, error = ask(graph, "ablate", node="mlp1/3@2")
    assert not ok and "feature circuits" in error


def test_constructor_checks_and_pruning(random_model, saes, task, circuit):
    with pytest.raises(ValueError, match="together"):
        CircuitGraph(circuit, model=random_model)
    with pytest.raises(ValueError, match=r"lacks .*blocks.3.hook_resid_post"):
        CircuitGraph(circuit, model=random_model, saes=[saes[f"blocks.{layer}.hook_resid_post"] for layer in range(3)], task=task)
    with pytest.raises(TypeError):
        CircuitGraph(circuit.to_dict())
    many = Circuit([Node(f"resid_post0/{i}@0", 0, "resid_post", i, 0, effect=float(i)) for i in range(MAX_NODES + 50)]
                   + [Node("metric", 1, "metric")])
    graph = CircuitGraph(many)
    assert len(graph.nodes["ids"]) == MAX_NODES and "metric" in graph.nodes["ids"] and "resid_post0/449@0" in graph.nodes["ids"]
    assert "resid_post0/0@0" not in graph.nodes["ids"]


def test_a_circuit_from_the_engine_draws_and_ablates(random_model, saes, task):
    options = dict(method="atp", kinds=("resid_post",), progress=False)
    effects = iw.circuits.feature_circuit(random_model, saes, task, node_threshold=0.0, edges=False, **options)
    threshold = sorted(abs(n.effect) for n in effects.nodes if n.is_feature)[-8]  # at least 8 feature nodes
    circuit = iw.circuits.feature_circuit(random_model, saes, task, node_threshold=threshold, **options)
    assert circuit.edges
    graph = CircuitGraph(circuit, model=random_model, saes=saes, task=task)
    feature = next(n for n in circuit.nodes if n.is_feature)
    graph.ablation = "zero"
    ok, result = ask(graph, "ablate", node=feature.id)
    assert ok, result
    assert result["metric_before"] == pytest.approx(circuit.metadata["metric_clean"], abs=1e-4)


def test_static_preview_lists_nodes_by_layer(graph):
    html = graph._repr_mimebundle_()[0]["text/html"]
    assert "resid_post1 #5 @3 (+0.8)" in html and "layer 4" in html and "support for the metric" in html
    markup = CircuitGraph(Circuit([Node("resid_pre0@0", 0, "resid_pre", None, 0, "<script>alert(1)</script>", 1.0)]))
    assert "<script>" not in markup._repr_mimebundle_()[0]["text/html"]
    empty = CircuitGraph(Circuit([], [], {"message": "No node has |effect| >= 0.1"}))
    assert "No node has |effect| &gt;= 0.1" in empty._repr_mimebundle_()[0]["text/html"]


def test_a_feature_circuits_colours_mean_support_for_the_metric(graph):
    """A feature circuit's node effect is the metric's change when the node is patched to its corrupt value, so a node
    that supports the metric has a negative effect: colours are drawn from sign * effect, and the legend says so."""
    assert graph.colours == {
        "sign": -1,
        "supports": "supports the metric (ablating it lowers the metric)",
        "opposes": "opposes the metric (ablating it raises the metric)",
        "units": "support for the metric: -(effect of patching the node to its corrupt value)",
    }
    assert graph.traits()["colours"].read_only


def test_a_linear_graphs_colours_are_its_attributions(random_model):
    circuit = Circuit([Node("mlp1/3@2", 1, "mlp", 3, 2, "mlp1 #3", 1.0), Node("metric", 4, "metric", effect=1.0)],
                      [Edge("mlp1/3@2", "metric", 1.0)], method="linear_graph")
    graph = CircuitGraph(circuit)
    assert graph.colours["sign"] == 1
    assert graph.colours["supports"] == "supports the target (positive attribution)"


@pytest.fixture(scope="module")
def ioi_circuit(teaching_model):
    """The teaching model's IOI feature circuit (its strongest nodes), as 03_circuits draws it."""
    saes = iw.sae.pretrained(teaching_model)
    task = iw.tasks.ioi(teaching_model, n=8, seed=1)
    circuit = iw.circuits.feature_circuit(teaching_model, saes, task, method="ig", steps=3, node_threshold=0.0,
                                          top_n=12, edges=False, progress=False)
    return circuit, saes, task


def test_nodes_coloured_as_supporting_lower_the_metric_when_ablated(teaching_model, ioi_circuit):
    """The sign convention checked against real ablations: among the strongest nodes of the IOI circuit, each one the
    colours call "supports" lowers the task metric when mean-ablated, each one they call "opposes" does not lower it."""
    circuit, saes, task = ioi_circuit
    graph = CircuitGraph(circuit, model=teaching_model, saes=saes, task=task)
    shown = decode_array(graph.nodes["effect"]) * graph.colours["sign"]
    index = {node_id: i for i, node_id in enumerate(graph.nodes["ids"])}
    top = circuit.top(5)
    assert any(shown[index[n.id]] > 0 for n in top)
    for node in top:
        ablated = ablate_nodes(teaching_model, saes, task, [node], ablation="mean")
        change = ablated.metric_ablated - ablated.metric_clean
        if shown[index[node.id]] > 0:
            assert change < 0, f"{node.label} is coloured as supporting but ablating it raises the metric by {change:.3g}"
        else:
            assert change > 0, f"{node.label} is coloured as opposing but ablating it lowers the metric by {-change:.3g}"


def test_column_tokens_come_from_the_tasks_first_clean_prompt(teaching_model, ioi_circuit):
    circuit, saes, task = ioi_circuit
    graph = CircuitGraph(circuit, model=teaching_model, saes=saes, task=task)
    words = [teaching_model.tokenizer.decode([i]) for i in task.clean_tokens[0].tolist()]
    assert graph.tokens == [repr(word) for word in words]


def test_column_tokens_come_from_the_circuits_metadata_without_a_task(circuit):
    assert CircuitGraph(circuit).tokens == []
    named = Circuit(circuit.nodes, circuit.edges, {**circuit.metadata, "prompt_tokens": ["a", " b", " c", " d", " e"]},
                    method="atp", kinds=("resid_post",))
    assert CircuitGraph(named).tokens == ["'a'", "' b'", "' c'", "' d'", "' e'"]


def test_feature_nodes_carry_their_dictionarys_labels(random_model, task, circuit):
    """Node labels ("clerps") are those the test gives each dictionary, for the feature nodes only; the ablate and
    open replies and the static preview carry them too."""
    labelled = SAESet.of([build_sae(SAEConfig(d_in=128, d_sae=32, architecture="topk", k=4, hook_name=resid(layer)),
                                    seed=layer) for layer in range(4)])
    for layer, sae in enumerate(labelled.values()):
        sae.labels = FeatureLabels(32, {5: f"five of layer {layer}", 7: f"seven of layer {layer}"})
    graph = CircuitGraph(circuit, model=random_model, saes=labelled, task=task)
    assert graph.nodes["clerps"] == ["", "", "five of layer 1", "seven of layer 2", "", ""]  # #1 of layer 3 has none
    ok, result = ask(graph, "ablate", node="resid_post2/7@4")
    assert ok and result["clerp"] == "seven of layer 2"
    assert "resid_post1 #5 @3 five of layer 1" in graph._static_html()
    dashboard = FeatureDashboard(random_model, labelled, corpus=torch.zeros(2, 4, dtype=torch.long))
    ok, result = ask(CircuitGraph(circuit, dashboard=dashboard), "open", node="resid_post1/5@3")
    assert ok and result["clerp"] == "five of layer 1"
