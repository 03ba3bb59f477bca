"""The Circuit data structure: ids in the place grammar, pruning, JSON and networkx round trips, the features it
names by dictionary, and its errors."""

from __future__ import annotations

import json

import pytest

from interpwidgets.circuits.graph import Circuit, Edge, Node, node_id
from interpwidgets.interventions.components import parse_node


def small_circuit() -> Circuit:
    nodes = [
        Node(node_id("resid_pre", 0, position=1), 0, "resid_pre", None, 1, "resid_pre0 @1", 0.05),
        Node(node_id("resid_post", 0, 7, 1), 0, "resid_post", 7, 1, "resid_post0 #7", 0.5,
             dictionary="blocks.0.hook_resid_post"),
        Node(node_id("attn", 1, "error", 2), 1, "attn", "error", 2, "attn1 error", -0.3, dictionary="blocks.1.hook_attn_out"),
        Node(node_id("mlp", 1, 3, None), 1, "mlp", 3, None, "mlp1 #3", 0.02, dictionary="blocks.1.ln2.hook_normalized"),
        Node("metric", 2, "metric", label="ioi", effect=1.0),
    ]
    edges = [
        Edge("resid_pre0@1", "resid_post0/7@1", 0.04),
        Edge("resid_post0/7@1", "attn1/error@2", 0.4),
        Edge("attn1/error@2", "metric", -0.3),
        Edge("mlp1/3", "metric", 0.001),
    ]
    return Circuit(nodes, edges, {"task": "ioi"}, method="atp", kinds=("resid_post", "attn"))


def test_node_ids_name_kind_layer_feature_and_position():
    assert node_id("resid_post", 2, 153, 7) == "resid_post2/153@7"
    assert node_id("attn", 1, "error", 3) == "attn1/error@3"
    assert node_id("mlp", 0, 12) == "mlp0/12"
    assert node_id("resid_pre", 0, position=4) == "resid_pre0@4"
    assert node_id("embed", position=4) == "embed@4"
    assert node_id("mlp", 3, "bias") == "mlp3/bias"
    with pytest.raises(ValueError, match="Unknown node kind"):
        node_id("neuron", 0, 1)


@pytest.mark.parametrize(("kind", "layer", "unit", "position", "hook"), [
    ("resid_post", 2, 153, 7, "blocks.2.hook_resid_post"),
    ("attn", 1, "error", 3, "blocks.1.hook_attn_out"),
    ("mlp", 0, 12, None, "blocks.0.hook_mlp_out"),
    ("resid_pre", 0, None, 4, "blocks.0.hook_resid_pre"),
    ("embed", 0, None, 4, "hook_embed"),
    ("pos_embed", 0, None, 2, "hook_pos_embed"),
])
def test_node_ids_parse_back_to_the_hook_and_unit_they_name(kind, layer, unit, position, hook):
    """Every feature, error and embedding node id is a place of the short-name grammar (`parse_node`)."""
    place, parsed_unit = parse_node(node_id(kind, layer, unit, position))
    assert place.hook_name == hook and parsed_unit == unit
    assert place.positions == (None if position is None else (position,))


def test_features_by_dictionary_groups_feature_nodes_by_the_dictionary_they_name():
    c = small_circuit()
    assert c.features_by_dictionary() == {"blocks.0.hook_resid_post": [7], "blocks.1.ln2.hook_normalized": [3]}
    with pytest.raises(ValueError, match="names no dictionary"):
        Circuit([Node("mlp1/3", 1, "mlp", 3)]).features_by_dictionary()


def test_json_round_trip_keeps_nodes_edges_and_metadata(tmp_path):
    c = small_circuit()
    path = tmp_path / "c.json"
    c.to_json(path)
    back = Circuit.from_json(path)
    assert back == c
    assert Circuit.from_json(c.to_json()) == c
    data = json.loads(c.to_json())
    assert set(data["nodes"][1]) == {"id", "layer", "kind", "feature", "position", "label", "effect", "activation",
                                     "dictionary"}
    assert data["edges"][0] == {"src": "resid_pre0@1", "dst": "resid_post0/7@1", "weight": 0.04}
    assert (back.method, back.kinds) == ("atp", ("resid_post", "attn"))


def test_networkx_export_carries_attributes():
    g = small_circuit().to_networkx()
    assert g.number_of_nodes() == 5 and g.number_of_edges() == 4
    assert g.nodes["resid_post0/7@1"]["layer"] == 0 and g.nodes["resid_post0/7@1"]["feature"] == 7
    assert g.edges["resid_post0/7@1", "attn1/error@2"]["weight"] == 0.4
    assert g.graph["method"] == "atp"


def test_prune_by_node_and_edge_threshold_and_connectivity():
    c = small_circuit()
    p = c.prune(node_threshold=0.1)
    assert {n.id for n in p.nodes} == {"resid_post0/7@1", "attn1/error@2", "metric"}
    assert [(e.src, e.dst) for e in p.edges] == [("resid_post0/7@1", "attn1/error@2"), ("attn1/error@2", "metric")]
    assert (p.method, p.kinds) == ("atp", ("resid_post", "attn"))
    q = c.prune(edge_threshold=0.01, connected=True)
    # mlp1/3 reaches the metric only through an edge below the threshold
    assert "mlp1/3" not in q and "resid_pre0@1" in q
    assert [n.id for n in c.prune(top_k=1).nodes] == ["resid_post0/7@1", "metric"]


def test_prune_that_removes_everything_gives_an_empty_circuit_with_a_message():
    p = small_circuit().prune(node_threshold=10.0)
    assert p.is_empty and len(p) == 0
    assert "removed every node" in p.message and "0.5" in p.message


def test_views_group_by_layer_in_drawing_order():
    c = small_circuit()
    layers = c.by_layer()
    assert [n.id for n in layers[0]] == ["resid_pre0@1", "resid_post0/7@1"]
    assert [n.id for n in layers[1]] == ["attn1/error@2", "mlp1/3"]
    assert c.weights[("attn1/error@2", "metric")] == -0.3
    assert c.labels["mlp1/3"] == "mlp1 #3"
    assert [n.id for n in c.features()] == ["resid_post0/7@1", "mlp1/3"]
    assert [n.id for n in c.top(2)] == ["resid_post0/7@1", "attn1/error@2"]
    assert [n.place for n in c.nodes] == ["resid_pre0", "resid_post0", "attn1", "mlp1", "metric"]


def test_malformed_circuits_raise_clear_errors():
    with pytest.raises(ValueError, match="unique"):
        Circuit([Node("a", 0, "resid_post"), Node("a", 0, "resid_post")])
    with pytest.raises(ValueError, match="not in the circuit"):
        Circuit([Node("a", 0, "resid_post")], [Edge("a", "b", 1.0)])
    with pytest.raises(ValueError, match="format_version"):
        Circuit.from_dict({"format_version": 99, "nodes": [], "edges": []})
    with pytest.raises(ValueError, match="version 1 named places 'resid2'"):
        Circuit.from_dict({"format_version": 1, "nodes": [], "edges": []})
    with pytest.raises(ValueError, match="Malformed"):
        Circuit.from_dict({"format_version": 2, "nodes": [{"id": "a"}], "edges": []})
