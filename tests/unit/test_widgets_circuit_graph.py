"""CircuitGraph: the circuit as arrays, node ablation against hand-built interventions, opening a node's
feature in a dashboard, request checks, pruning, and the static preview."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits import Circuit, Edge, Node
from interpwidgets.sae import SAEConfig, SAESet, build_sae
from interpwidgets.sae.editing import ablate_features
from interpwidgets.widgets.circuit_graph import MAX_NODES, CircuitGraph
from interpwidgets.widgets.testing import decode_array
from interpwidgets.widgets.feature_dashboard import FeatureDashboard
from interpwidgets.widgets.testing import ask, decode_int32


@pytest.fixture(scope="module")
def saes():
    return SAESet.of([
        build_sae(SAEConfig(d_in=128, d_sae=32, architecture="topk", k=4, hook_name=f"blocks.{layer}.hook_resid_post"),
                  seed=layer)
        for layer in range(4)
    ])


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=4, seed=0)


@pytest.fixture(scope="module")
def circuit() -> Circuit:
    nodes = [
        Node("embed@1", 0, "embed", None, 1, "embed @1", 0.2),
        Node("resid0/error@2", 0, "resid", "error", 2, "resid 0 error @2", -0.1),
        Node("resid1/5@3", 1, "resid", 5, 3, "resid 1 #5 @3", 0.8, activation=1.5),
        Node("resid2/7@4", 2, "resid", 7, 4, "resid 2 #7 @4", -0.4),
        Node("resid3/1", 3, "resid", 1, None, "resid 3 #1", 0.3),
        Node("metric", 4, "metric", label="ioi", effect=-1.0),
    ]
    edges = [Edge("embed@1", "resid1/5@3", 0.5), Edge("resid0/error@2", "resid1/5@3", -0.2),
             Edge("resid1/5@3", "resid2/7@4", 0.3), Edge("resid2/7@4", "metric", -0.6), Edge("resid3/1", "metric", 0.1)]
    return Circuit(nodes, edges, {"task": "ioi", "method": "atp", "kinds": ["resid"], "n_layers": 4})


@pytest.fixture(scope="module")
def graph(random_model, saes, task, circuit):
    return CircuitGraph(circuit, model=random_model, saes=saes, task=task)




def metric_with(model, task, hooks) -> float:
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        return float(task.metric(model(task.clean_tokens)))


def test_nodes_and_edges_travel_as_arrays(graph, circuit):
    nodes, edges = graph.nodes, graph.edges
    assert nodes["ids"] == [n.id for n in circuit.nodes] and nodes["kinds"][0] == "embed"
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
    assert graph.actions == ["ablate"] and graph.action == "ablate"


def test_zero_ablating_a_feature_node_matches_removing_the_feature(random_model, saes, task, graph):
    before, after = graph.ablate("resid1/5@3", "zero")
    edit = ablate_features(random_model, saes["blocks.1.hook_resid_post"], [5], positions=[3])
    with torch.no_grad():
        expected = float(task.metric(edit.run(task.clean_tokens)))
        clean = float(task.metric(random_model(task.clean_tokens)))
    assert before == pytest.approx(clean, abs=1e-4)
    assert after == pytest.approx(expected, abs=1e-4)


def test_mean_ablating_a_feature_node_sets_it_to_its_corrupt_mean(random_model, saes, task, graph):
    sae = saes["blocks.2.hook_resid_post"]
    with torch.no_grad():
        _, cache = random_model.run_with_cache(task.corrupt_tokens)
        mean = sae.encode(cache["blocks.2.hook_resid_post"])[:, 4, 7].mean()

    def to_mean(x, hook):
        f = sae.encode(x)[:, 4, 7]
        x = x.clone()
        x[:, 4] += (mean - f)[:, None] * sae.W_dec[7]
        return x

    expected = metric_with(random_model, task, [("blocks.2.hook_resid_post", to_mean)])
    ok, result = ask(graph, "ablate", node="resid2/7@4", ablation="mean")
    assert ok, result
    assert result["metric_after"] == pytest.approx(expected, abs=1e-4)
    assert result["label"] == "resid 2 #7 @4" and result["ablation"] == "mean"


def test_zero_ablating_an_error_node_removes_the_reconstruction_error(random_model, saes, task, graph):
    sae = saes["blocks.0.hook_resid_post"]

    def drop_error(x, hook):
        x = x.clone()
        x[:, 2] = sae.decode(sae.encode(x[:, 2]))
        return x

    expected = metric_with(random_model, task, [("blocks.0.hook_resid_post", drop_error)])
    assert graph.ablate("resid0/error@2", "zero")[1] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("method", "params", "complaint"),
    [
        ("ablate", {"node": "metric", "ablation": "zero"}, "metric node cannot be ablated"),
        ("ablate", {"node": "resid9/1@1", "ablation": "zero"}, "node must be the id of a node"),
        ("ablate", {"node": 3, "ablation": "zero"}, "node must be the id of a node"),
        ("ablate", {"node": "resid1/5@3", "ablation": "resample"}, "ablation must be one of"),
        ("ablate", {"node": "resid1/5@3"}, "ablation must be one of"),
        ("ablate", {"node": "resid1/5@3", "ablation": "zero", "x": 1}, "unexpected parameters"),
        ("open", {"node": "resid1/5@3"}, "no dashboard is attached"),
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
    assert graph.actions == ["open"]
    ok, result = ask(graph, "open", node="resid2/7@4")
    assert ok and result == {"node": "resid2/7@4", "label": "resid 2 #7 @4", "hook": "blocks.2.hook_resid_post", "feature": 7}
    assert (dashboard.hook, dashboard.feature) == ("blocks.2.hook_resid_post", 7)
    assert [node.id for node in opened] == ["resid2/7@4"]
    ok, error = ask(graph, "open", node="resid0/error@2")
    assert not ok and "is not an SAE feature" in error
    ok, error = ask(graph, "ablate", node="resid1/5@3", ablation="zero")
    assert not ok and "needs the model, SAEs and task" in error


def test_linear_graph_nodes_open_transcoder_features(random_model):
    transcoder = build_sae(SAEConfig(d_in=128, d_sae=16, architecture="relu", hook_name="blocks.1.ln2.hook_normalized",
                                     hook_name_out="blocks.1.hook_mlp_out"), seed=0)
    mlp_sae = build_sae(SAEConfig(d_in=128, d_sae=16, architecture="relu", hook_name="blocks.1.hook_mlp_out"), seed=1)
    circuit = Circuit([Node("mlp1/3@2", 1, "mlp", 3, 2, "mlp 1 #3", 1.0), Node("metric", 4, "metric", effect=1.0)],
                      [Edge("mlp1/3@2", "metric", 1.0)], {"method": "linear_graph"})
    graph = CircuitGraph(circuit)
    graph.on_open(lambda node: None)
    graph.saes.update({"blocks.1.ln2.hook_normalized": transcoder, "blocks.1.hook_mlp_out": mlp_sae})
    assert graph.feature_of("mlp1/3@2") == ("blocks.1.ln2.hook_normalized", 3)
    with pytest.raises(ValueError, match="feature circuits"):
        CircuitGraph(circuit, model=random_model, saes=[transcoder], task=object()).ablate("mlp1/3@2")


def test_constructor_checks_and_pruning(random_model, saes, circuit):
    with pytest.raises(ValueError, match="together"):
        CircuitGraph(circuit, model=random_model)
    with pytest.raises(TypeError):
        CircuitGraph(circuit.to_dict())
    many = Circuit([Node(f"resid0/{i}@0", 0, "resid", i, 0, effect=float(i)) for i in range(MAX_NODES + 50)]
                   + [Node("metric", 1, "metric")])
    graph = CircuitGraph(many)
    assert len(graph.nodes["ids"]) == MAX_NODES and "metric" in graph.nodes["ids"] and "resid0/449@0" in graph.nodes["ids"]
    assert "resid0/0@0" not in graph.nodes["ids"]


def test_a_circuit_from_the_engine_draws_and_ablates(random_model, saes, task):
    options = dict(method="atp", kinds=("resid",), progress=False)
    effects = iw.circuits.feature_circuit(random_model, saes, task, node_threshold=0.0, edges=False, **options)
    threshold = sorted(abs(n.effect) for n in effects.nodes if n.is_feature)[-8]  # at least 8 feature nodes
    circuit = iw.circuits.feature_circuit(random_model, saes, task, node_threshold=threshold, **options)
    assert circuit.edges
    graph = CircuitGraph(circuit, model=random_model, saes=saes, task=task)
    feature = next(n for n in circuit.nodes if n.is_feature)
    ok, result = ask(graph, "ablate", node=feature.id, ablation="zero")
    assert ok, result
    assert result["metric_before"] == pytest.approx(circuit.metadata["metric_clean"], abs=1e-4)


def test_static_preview_lists_nodes_by_layer(graph):
    html = graph._repr_mimebundle_()[0]["text/html"]
    assert "resid 1 #5 @3 (+0.8)" in html and "layer 4" in html and "node effect on the metric" in html
    markup = CircuitGraph(Circuit([Node("embed@0", 0, "embed", None, 0, "<script>alert(1)</script>", 1.0)]))
    assert "<script>" not in markup._repr_mimebundle_()[0]["text/html"]
    empty = CircuitGraph(Circuit([], [], {"message": "No node has |effect| >= 0.1"}))
    assert "No node has |effect| &gt;= 0.1" in empty._repr_mimebundle_()[0]["text/html"]
