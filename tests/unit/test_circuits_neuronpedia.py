"""Attribution graphs in circuit-tracer / Neuronpedia graph JSON, checked against files circuit-tracer 0.5.0 wrote.

The fixture (tests/fixtures/circuit_tracer/, made by scripts/release/make_circuit_tracer_fixture.py) is the teaching
model's graph of one IOI prompt as circuit-tracer's own `create_graph_files`, `prune_graph` and
`compute_graph_scores` saw it. Hand-built graphs check the layout (bias nodes dropped, position embeddings folded)
against sums computed by hand here.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits import influence as inf
from interpwidgets.circuits.attribution_graph import AttributionGraph, attribution_graph
from interpwidgets.circuits.graph import Node
from interpwidgets.circuits.neuronpedia import cantor, circuit_tracer_layout, from_neuronpedia, to_neuronpedia

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "circuit_tracer"
F, E, T, B, L = inf.FEATURE, inf.ERROR, inf.TOKEN, inf.BIAS, inf.LOGIT


@pytest.fixture(scope="module")
def ct_file() -> dict:
    return json.loads((FIXTURES / "ioi.json").read_text())


@pytest.fixture(scope="module")
def ct_prune() -> dict:
    return json.loads((FIXTURES / "ioi_prune.json").read_text())


@pytest.fixture(scope="module")
def teaching_graph(teaching_model, ct_file) -> AttributionGraph:
    """The fixture's graph rebuilt here, from the token ids of its embedding nodes (E_token_pos)."""
    tokens = [int(n["node_id"].split("_")[1]) for n in sorted(
        (n for n in ct_file["nodes"] if n["feature_type"] == "embedding"), key=lambda n: n["ctx_idx"])]
    return attribution_graph(teaching_model, iw.sae.pretrained(teaching_model), tokens, progress=False)


# ---- (a) the fixture imports -------------------------------------------------------------------
def test_circuit_tracer_file_imports_its_nodes_links_and_metadata(ct_file, teaching_model):
    """Every node of circuit-tracer's file becomes ours (feature "L_f_p" -> "mlpL/f@p" with its activation, error
    "0_L_p" -> "mlpL/error@p", "E_t_p" -> "embed@p", logit -> "logit/t@p" weighted by token_prob), every link an edge
    of the same weight, and the prompt's tokens are those the teaching tokenizer gives for the file's prompt."""
    g = from_neuronpedia(FIXTURES / "ioi.json")
    assert len(g) == len(ct_file["nodes"]) and len(g.src) == len(ct_file["links"])
    file_id = {}
    for node, raw in zip(g.nodes, ct_file["nodes"]):
        file_id[raw["node_id"]] = node.id
        layer, pos = raw["layer"], raw["ctx_idx"]
        if raw["feature_type"] == "cross layer transcoder":
            _, feat, _ = raw["node_id"].split("_")
            assert node.id == f"mlp{layer}/{feat}@{pos}" and node.activation == raw["activation"]
            assert raw["feature"] == cantor(int(layer), int(feat))
        elif raw["feature_type"] == "mlp reconstruction error":
            assert node.id == f"mlp{layer}/error@{pos}" and raw["node_id"] == f"0_{layer}_{pos}"
        elif raw["feature_type"] == "embedding":
            assert node.id == f"embed@{pos}"
        else:
            assert node.id == f"logit/{raw['feature']}@{pos}" and raw["layer"] == "5"  # n_layers + 1
            assert float(g.logit_weights[g.index(node.id)]) == raw["token_prob"]
    counts = {t: sum(n["feature_type"] == t for n in ct_file["nodes"]) for t in
              ("cross layer transcoder", "mlp reconstruction error", "embedding", "logit")}
    assert [len(g.of_type(k)) for k in ("feature", "error", "token", "logit")] == list(counts.values())
    for link in ct_file["links"]:
        assert g.inputs(file_id[link["target"]])[file_id[link["source"]]] == link["weight"]
    md = ct_file["metadata"]
    assert g.metadata["prompt"] == md["prompt"] and g.metadata["prompt_tokens"] == md["prompt_tokens"]
    assert g.metadata["token_ids"] == teaching_model.to_tokens(md["prompt"], prepend_bos=False)[0].tolist()
    assert g.metadata["n_layers"] == teaching_model.cfg.n_layers and g.linear is None
    assert g.supernodes == {} and g.metadata["pinned"] == []


def first_node(ct_file: dict, feature_type: str) -> dict:
    return next(n for n in ct_file["nodes"] if n["feature_type"] == feature_type)


def test_pinned_ids_and_supernodes_of_a_file_map_to_our_node_ids(ct_file):
    """qParams.supernodes `[name, node_id, ...]` become graph supernodes and pinnedIds / clickedId our ids (the
    file's first embedding, transcoder feature and logit node, renamed here by circuit-tracer's id scheme)."""
    emb, feat, logit = (first_node(ct_file, t) for t in ("embedding", "cross layer transcoder", "logit"))
    ours = {emb["node_id"]: f"embed@{emb['ctx_idx']}",
            feat["node_id"]: f"mlp{feat['layer']}/{feat['node_id'].split('_')[1]}@{feat['ctx_idx']}",
            logit["node_id"]: f"logit/{logit['feature']}@{logit['ctx_idx']}"}
    data = copy.deepcopy(ct_file)
    data["qParams"].update(pinnedIds=[emb["node_id"], logit["node_id"]], clickedId=feat["node_id"],
                           supernodes=[["name", emb["node_id"], feat["node_id"]], ["logit", logit["node_id"]]])
    g = from_neuronpedia(data)
    assert g.supernodes == {"name": [ours[emb["node_id"]], ours[feat["node_id"]]], "logit": [ours[logit["node_id"]]]}
    assert g.metadata["pinned"] == [ours[emb["node_id"]], ours[logit["node_id"]]]
    assert g.metadata["neuronpedia"]["qParams"]["clickedId"] == ours[feat["node_id"]]
    assert to_neuronpedia(g)["qParams"] == data["qParams"]


# ---- (b) import -> export reproduces the file --------------------------------------------------
def test_import_then_export_gives_circuit_tracers_file_back(ct_file, tmp_path):
    """Every node, field, link and the metadata and qParams come back as circuit-tracer wrote them, through a
    file written by `to_neuronpedia(path=...)` and read back too."""
    g = from_neuronpedia(json.dumps(ct_file))
    out = to_neuronpedia(g, tmp_path / "again.json")
    assert out == ct_file
    assert json.loads((tmp_path / "again.json").read_text()) == ct_file
    assert to_neuronpedia(from_neuronpedia(tmp_path / "again.json")) == ct_file


# ---- (c) our export of the same graph is circuit-tracer's file ------------------------------------
def test_our_pruning_on_circuit_tracers_layout_gives_its_masks_and_scores(teaching_graph, ct_prune):
    """On the rebuilt graph in circuit-tracer's layout, our prune keeps exactly the nodes and [target, source] edges
    circuit-tracer's `prune_graph` kept, its cumulative influence matches (float32 there, float64 here), and our
    replacement and completeness scores equal its `compute_graph_scores`."""
    layout = circuit_tracer_layout(teaching_graph)
    assert len(layout) == ct_prune["n_nodes"] and len(layout.src) == ct_prune["n_edges"]
    p = layout.prune(ct_prune["node_threshold"], ct_prune["edge_threshold"])
    assert p.node_mask.nonzero()[:, 0].tolist() == ct_prune["kept_nodes"]
    kept = sorted(zip(layout.dst[p.edge_mask].tolist(), layout.src[p.edge_mask].tolist()))
    assert [list(e) for e in kept] == ct_prune["kept_edges"]
    assert torch.allclose(p.cumulative, torch.tensor(ct_prune["cumulative"], dtype=torch.float64), atol=1e-5)
    scores = layout.scores()
    assert scores.replacement == pytest.approx(ct_prune["replacement_score"], abs=1e-5)
    assert scores.completeness == pytest.approx(ct_prune["completeness_score"], abs=1e-5)


def test_our_export_of_the_teaching_graph_is_circuit_tracers_file(teaching_graph, ct_file):
    """`to_neuronpedia` of the rebuilt graph lists circuit-tracer's nodes (ids, types, features, activations,
    clerps) and links in its order with its weights, and its metadata and qParams."""
    ours = to_neuronpedia(teaching_graph, slug=ct_file["metadata"]["slug"], scan=ct_file["metadata"]["scan"])
    assert [n["node_id"] for n in ours["nodes"]] == [n["node_id"] for n in ct_file["nodes"]]
    for a, b in zip(ours["nodes"], ct_file["nodes"]):
        for key in ("feature", "layer", "ctx_idx", "feature_type", "jsNodeId", "clerp", "is_target_logit", "token_prob"):
            assert a[key] == b[key], (b["node_id"], key)
        for key in ("influence", "activation"):
            assert (a[key] is None) == (b[key] is None) and (a[key] is None or a[key] == pytest.approx(b[key], abs=1e-5))
    assert [(x["source"], x["target"]) for x in ours["links"]] == [(x["source"], x["target"]) for x in ct_file["links"]]
    assert [x["weight"] for x in ours["links"]] == pytest.approx([x["weight"] for x in ct_file["links"]], rel=1e-6)
    assert {k: ours["metadata"][k] for k in ct_file["metadata"]} == ct_file["metadata"]
    assert ours["qParams"] == ct_file["qParams"]
    assert "bias nodes" in ours["metadata"]["info"]["description"]
    assert to_neuronpedia(from_neuronpedia(ours)) == ours  # and our own file reads back to itself


def test_export_with_saes_writes_each_features_bundled_label_as_its_clerp(teaching_graph, teaching_model):
    """The clerp of every feature node is the label in its transcoder's bundled labels.json."""
    saes = iw.sae.pretrained(teaching_model)
    data = to_neuronpedia(teaching_graph, saes=saes)
    bundled = Path(iw.__file__).parent / "assets" / "teaching" / "saes"
    files = {}
    for node in data["nodes"]:
        if node["feature_type"] == "cross layer transcoder":
            layer, feature, _ = map(int, node["node_id"].split("_"))
            if layer not in files:
                files[layer] = json.loads((bundled / f"blocks_{layer}_ln2_hook_normalized" / "labels.json").read_text())
            assert node["clerp"] == files[layer]["labels"][str(feature)], node["node_id"]
    assert files and to_neuronpedia(from_neuronpedia(data), saes=saes) == data


def test_export_of_a_given_pruning_keeps_its_nodes_and_sums_its_folded_edges(teaching_graph):
    """With `pruning=` (of the full graph, biases included), the file holds its kept nodes other than bias and
    position-embedding nodes, and one link per kept (source, target) after folding pos_embed@p into embed@p, whose
    weight is the merged embedding's whole direct effect: the sum of both parallel edges."""
    p = teaching_graph.prune(0.8, 0.98)
    data = to_neuronpedia(teaching_graph, pruning=p)
    g, m = teaching_graph, p.edge_mask

    def name(i: int) -> str:
        n = g.nodes[i]
        return f"embed@{n.position}" if n.kind == "pos_embed" else n.id

    kept_links = {(name(s), name(d)) for s, d in zip(g.src[m].tolist(), g.dst[m].tolist()) if int(g.node_type[s]) != B}
    expected: dict[tuple[str, str], float] = {}
    for s, d, w in zip(g.src.tolist(), g.dst.tolist(), g.weight.tolist()):
        if (name(s), name(d)) in kept_links:
            expected[(name(s), name(d))] = expected.get((name(s), name(d)), 0.0) + w
    back = from_neuronpedia(data)
    got = {(back.nodes[s].id, back.nodes[d].id): w for s, d, w in zip(back.src.tolist(), back.dst.tolist(), back.weight.tolist())}
    assert got.keys() == expected.keys()
    assert [got[k] for k in expected] == pytest.approx(list(expected.values()), rel=1e-6)
    linked = {x for edge in expected for x in edge}
    kept = {name(i) for i in p.node_mask.nonzero()[:, 0].tolist() if int(g.node_type[i]) != B}
    assert {n.id for n in back.nodes} == {i for i in kept if i in linked or i.startswith(("embed", "logit"))}
    assert data["metadata"]["node_threshold"] == 0.8 and data["metadata"]["pruning_settings"]["edge_threshold"] == 0.98


# ---- the layout on hand-built graphs ------------------------------------------------------------
def hand_graph(feature: int = 5) -> AttributionGraph:
    """1 layer, 2 positions (tokens 7, 9): feature f at position 1, two errors, embeddings and position embeddings,
    a bias node and one logit (token 3, weight 0.75)."""
    nodes = [Node(f"mlp0/{feature}@1", 0, "mlp", feature, 1, "f", activation=1.5, dictionary="blocks.0.ln2.hook_normalized"),
             Node("mlp0/error@0", 0, "mlp", "error", 0), Node("mlp0/error@1", 0, "mlp", "error", 1),
             Node("embed@0", 0, "embed", None, 0), Node("embed@1", 0, "embed", None, 1),
             Node("pos_embed@0", 0, "pos_embed", None, 0), Node("pos_embed@1", 0, "pos_embed", None, 1),
             Node("mlp0/bias", 0, "mlp", "bias"), Node("logit/3@1", 1, "logit", 3, 1, "logit ' c' (p=0.750)")]
    types = [F, E, E, T, T, T, T, B, L]
    # (src, dst, weight): into f: embed@0 .1, embed@1 2, pos_embed@1 .5, bias 1;
    # into the logit: f 3, error@1 .25, embed@1 1, pos_embed@1 -.25, bias .5
    edges = [(3, 0, 0.1), (4, 0, 2.0), (6, 0, 0.5), (7, 0, 1.0), (0, 8, 3.0), (2, 8, 0.25), (4, 8, 1.0), (6, 8, -0.25),
             (7, 8, 0.5)]
    src, dst, w = zip(*edges)
    n = len(nodes)
    return AttributionGraph(nodes, torch.tensor(types, dtype=torch.int8), torch.tensor(src), torch.tensor(dst),
                            torch.tensor(w, dtype=torch.float32), torch.full((n,), math.nan), torch.zeros(n),
                            torch.tensor([0.0] * 8 + [0.75]),
                            {"prompt": "ab", "prompt_tokens": ["a", "b"], "token_ids": [7, 9], "n_layers": 1})


def test_layout_drops_biases_and_folds_position_embeddings_as_summed_by_hand():
    """circuit-tracer's layout of the hand graph: nodes [f, error@0, error@1, embed@0, embed@1, logit], edges sorted
    by (target, source): f <- embed@0 .1, embed@1 2 + .5; logit <- f 3, error@1 .25, embed@1 1 - .25; the bias's
    1 and .5 moved into the remainders."""
    layout = circuit_tracer_layout(hand_graph())
    assert [n.id for n in layout.nodes] == ["mlp0/5@1", "mlp0/error@0", "mlp0/error@1", "embed@0", "embed@1", "logit/3@1"]
    edges = list(zip(layout.src.tolist(), layout.dst.tolist(), layout.weight.tolist()))
    assert edges == [(3, 0, pytest.approx(0.1)), (4, 0, 2.5), (0, 5, 3.0), (2, 5, 0.25), (4, 5, 0.75)]
    assert layout.remainder.tolist() == [1.0, 0, 0, 0, 0, 0.5]


def test_export_of_the_hand_graph_writes_circuit_tracers_ids_and_notes():
    """File ids of the hand graph by circuit-tracer's formats (everything kept at thresholds 1.0; error@0 has no
    output, so it goes), the logit clerp from the label's token, and the feature's clerp from `labels`."""
    data = to_neuronpedia(hand_graph(), node_threshold=1.0, edge_threshold=1.0, labels={"mlp0/5@1": "says c"})
    assert [n["node_id"] for n in data["nodes"]] == ["0_5_1", "0_0_1", "E_7_0", "E_9_1", "2_3_1"]
    assert [(x["source"], x["target"], x["weight"]) for x in data["links"]] == [
        ("E_7_0", "0_5_1", pytest.approx(0.1)), ("E_9_1", "0_5_1", 2.5), ("0_5_1", "2_3_1", 3.0),
        ("0_0_1", "2_3_1", 0.25), ("E_9_1", "2_3_1", 0.75)]
    f, logit = data["nodes"][0], data["nodes"][-1]
    assert (f["feature"], f["jsNodeId"], f["clerp"], f["activation"]) == (cantor(0, 5), "0_5-0", "says c", 1.5)
    assert (logit["clerp"], logit["token_prob"], logit["is_target_logit"]) == ('Output " c" (p=0.750)', 0.75, True)
    assert data["metadata"]["info"]["description"].count(";") == 1  # the bias note and the folding note


def test_error_ids_that_would_collide_with_layer_0_features_switch_to_the_fixed_format():
    """Feature 0 of layer 0 at position 1 has circuit-tracer 0.5's id "0_0_1", as does layer 0's error there; the
    export then writes errors as "L_-1_p" and says so, and the file reads back to the same nodes."""
    g = hand_graph(feature=0)
    data = to_neuronpedia(g, node_threshold=1.0, edge_threshold=1.0)
    assert [n["node_id"] for n in data["nodes"]][:2] == ["0_0_1", "0_-1_1"]
    assert "layer_-1_pos" in data["metadata"]["info"]["description"]
    assert [n.id for n in from_neuronpedia(data).nodes] == ["mlp0/0@1", "mlp0/error@1", "embed@0", "embed@1", "logit/3@1"]
    clash = copy.deepcopy(data)
    clash["nodes"][1]["node_id"] = "0_0_1"
    with pytest.raises(ValueError, match="appears twice"):
        from_neuronpedia(clash)


def test_attention_sae_nodes_and_logit_differences_are_refused():
    """Graphs with attention-SAE nodes or non-token logit targets have no counterpart in the format."""
    g = hand_graph()
    attention = dataclasses.replace(g, nodes=[Node("attn0/5@1", 0, "attn", 5, 1), *g.nodes[1:]])
    with pytest.raises(ValueError, match="attention-SAE.*attn_saes=False"):
        to_neuronpedia(attention)
    difference = dataclasses.replace(g, nodes=[*g.nodes[:-1], Node("logit/3-4@1", 1, "logit", "3-4", 1)])
    with pytest.raises(ValueError, match="single-token"):
        to_neuronpedia(difference)


# ---- (d) our own format stays lossless ----------------------------------------------------------
def test_our_json_round_trip_keeps_supernodes_and_the_imported_record(ct_file):
    """`to_json` -> `from_json` of an imported graph grouped into supernodes gives the same dict, and both export
    the same file with the supernode as `[name, node_id, ...]`."""
    emb, feat = first_node(ct_file, "embedding"), first_node(ct_file, "cross layer transcoder")
    g = from_neuronpedia(ct_file)
    members = [g.nodes[i].id for i, raw in enumerate(ct_file["nodes"]) if raw is emb or raw is feat]
    g.group("name", members)
    back = AttributionGraph.from_json(g.to_json())
    assert back.to_dict() == g.to_dict() and back.supernodes == {"name": members}
    assert to_neuronpedia(back) == to_neuronpedia(g)
    assert sorted(to_neuronpedia(back)["qParams"]["supernodes"][0][1:]) == sorted([emb["node_id"], feat["node_id"]])


def test_supernodes_of_a_built_graph_export_with_folded_and_dropped_members():
    """A supernode's position embedding stands for its token embedding, and its bias member is left out."""
    g = hand_graph()
    g.group("inputs", ["pos_embed@1", "embed@1", "mlp0/bias", "mlp0/5@1"])
    data = to_neuronpedia(g, node_threshold=1.0, edge_threshold=1.0, pinned=["pos_embed@0"])
    assert data["qParams"]["supernodes"] == [["inputs", "E_9_1", "0_5_1"]]
    assert data["qParams"]["pinnedIds"] == ["E_7_0"]


# ---- (e) malformed files ------------------------------------------------------------------------
@pytest.mark.parametrize("break_it, message", [
    (lambda d: d.pop("links"), r"no \['links'\]"),
    (lambda d: d["nodes"][3].pop("feature_type"), r"nodes\[3\].*lacks \['feature_type'\]"),
    (lambda d: d["nodes"][0].update(feature_type="lorsa"), "feature_type 'lorsa'; this reader knows"),
    (lambda d: d["links"][0].update(source="9_9_9"), r"links\[0\].*'9_9_9'"),
    (lambda d: d["metadata"].pop("prompt"), "metadata has no 'prompt'"),
    (lambda d: d["qParams"].update(pinnedIds=["nope"]), "pinnedIds names 'nope'"),
])
def test_malformed_files_raise_errors_naming_the_problem(ct_file, break_it, message):
    data = copy.deepcopy(ct_file)
    break_it(data)
    with pytest.raises(ValueError, match=message):
        from_neuronpedia(data)


def test_truncated_files_and_the_wrong_reader_raise_clear_errors(ct_file, tmp_path):
    """Half a file is reported as truncated; our own format sent to the graph-file reader and a graph file sent to
    ours each name the other reader."""
    text = (FIXTURES / "ioi.json").read_text()
    (tmp_path / "half.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        from_neuronpedia(tmp_path / "half.json")
    with pytest.raises(ValueError, match="No graph file"):
        from_neuronpedia(tmp_path / "missing.json")
    ours = hand_graph().to_json()
    with pytest.raises(ValueError, match="AttributionGraph.from_json"):
        from_neuronpedia(ours)
    with pytest.raises(ValueError, match="neuronpedia"):
        AttributionGraph.from_dict(ct_file)
