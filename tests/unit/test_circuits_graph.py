"""The Circuit data structure: ids, pruning, JSON and networkx round trips, and its errors."""

from __future__ import annotations

import json

import pytest

from interpwidgets.circuits.graph import Circuit, Edge, Node, node_id


def small_circuit() -> Circuit:
    nodes = [
        Node(node_id("embed", position=1), 0, "embed", None, 1, "embed @1", 0.05),
        Node(node_id("resid", 0, 7, 1), 0, "resid", 7, 1, "resid 0 #7", 0.5),
        Node(node_id("attn", 1, "error", 2), 1, "attn", "error", 2, "attn 1 error", -0.3),
        Node(node_id("mlp", 1, 3, None), 1, "mlp", 3, None, "mlp 1 #3", 0.02),
        Node("metric", 2, "metric", label="ioi", effect=1.0),
    ]
    edges = [
        Edge("embed@1", "resid0/7@1", 0.04),
        Edge("resid0/7@1", "attn1/error@2", 0.4),
        Edge("attn1/error@2", "metric", -0.3),
        Edge("mlp1/3", "metric", 0.001),
    ]
    return Circuit(nodes, edges, {"task": "ioi", "method": "atp"})


def test_node_ids_name_kind_layer_feature_and_position():
    assert node_id("resid", 2, 153, 7) == "resid2/153@7"
    assert node_id("attn", 1, "error", 3) == "attn1/error@3"
    assert node_id("mlp", 0, 12) == "mlp0/12"
    assert node_id("embed", position=4) == "embed@4"
    assert node_id("mlp", 3, "bias") == "mlp3/bias"
    with pytest.raises(ValueError, match="Unknown node kind"):
        node_id("neuron", 0, 1)


def test_json_round_trip_keeps_nodes_edges_and_metadata(tmp_path):
    c = small_circuit()
    path = tmp_path / "c.json"
    c.to_json(path)
    back = Circuit.from_json(path)
    assert back == c
    assert Circuit.from_json(c.to_json()) == c
    data = json.loads(c.to_json())
    assert set(data["nodes"][1]) == {"id", "layer", "kind", "feature", "position", "label", "effect", "activation"}
    assert data["edges"][0] == {"src": "embed@1", "dst": "resid0/7@1", "weight": 0.04}


def test_networkx_export_carries_attributes():
    g = small_circuit().to_networkx()
    assert g.number_of_nodes() == 5 and g.number_of_edges() == 4
    assert g.nodes["resid0/7@1"]["layer"] == 0 and g.nodes["resid0/7@1"]["feature"] == 7
    assert g.edges["resid0/7@1", "attn1/error@2"]["weight"] == 0.4


def test_prune_by_node_and_edge_threshold_and_connectivity():
    c = small_circuit()
    p = c.prune(node_threshold=0.1)
    assert {n.id for n in p.nodes} == {"resid0/7@1", "attn1/error@2", "metric"}
    assert [(e.src, e.dst) for e in p.edges] == [("resid0/7@1", "attn1/error@2"), ("attn1/error@2", "metric")]
    q = c.prune(edge_threshold=0.01, connected=True)
    # mlp1/3 reaches the metric only through an edge below the threshold
    assert "mlp1/3" not in q and "embed@1" in q
    assert [n.id for n in c.prune(top_k=1).nodes] == ["resid0/7@1", "metric"]


def test_prune_that_removes_everything_gives_an_empty_circuit_with_a_message():
    p = small_circuit().prune(node_threshold=10.0)
    assert p.is_empty and len(p) == 0
    assert "removed every node" in p.message and "0.5" in p.message


def test_views_group_by_layer_in_drawing_order():
    c = small_circuit()
    layers = c.by_layer()
    assert [n.id for n in layers[0]] == ["embed@1", "resid0/7@1"]
    assert [n.id for n in layers[1]] == ["attn1/error@2", "mlp1/3"]
    assert c.weights[("attn1/error@2", "metric")] == -0.3
    assert c.labels["mlp1/3"] == "mlp 1 #3"
    assert [n.id for n in c.features()] == ["resid0/7@1", "mlp1/3"]
    assert [n.id for n in c.top(2)] == ["resid0/7@1", "attn1/error@2"]


def test_malformed_circuits_raise_clear_errors():
    with pytest.raises(ValueError, match="unique"):
        Circuit([Node("a", 0, "resid"), Node("a", 0, "resid")])
    with pytest.raises(ValueError, match="not in the circuit"):
        Circuit([Node("a", 0, "resid")], [Edge("a", "b", 1.0)])
    with pytest.raises(ValueError, match="format_version"):
        Circuit.from_dict({"format_version": 99, "nodes": [], "edges": []})
    with pytest.raises(ValueError, match="Malformed"):
        Circuit.from_dict({"format_version": 1, "nodes": [{"id": "a"}], "edges": []})
