"""AttributionGraphView on the teaching model's IOI attribution graph: the payload is the graph (the nodes pruning can
keep at the largest node threshold, every edge among them in order, exact weights and influence, labels from the
bundled labels files); js/lib/prune.ts, run in Node on that payload, gives exactly `graph.prune`'s masks; the
faithfulness, intervention, open and group replies are the engine's (and the recorded code reproduces them); a
constrained ablation moves the target by exactly minus the feature's direct edge; every bad message is answered with
an error naming the problem."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits import influence as inf
from interpwidgets.circuits.attribution_graph import AttributionGraph, attribution_graph
from interpwidgets.widgets.attribution_graph import AttributionGraphView
from interpwidgets.widgets.feature_dashboard import FeatureDashboard
from interpwidgets.widgets.testing import ask

PROMPT = "When Mary and John went to the store, John gave a drink to"
JS = Path(__file__).resolve().parents[2] / "js"


@pytest.fixture(scope="module")
def saes(teaching_model):
    return iw.sae.pretrained(teaching_model)


@pytest.fixture(scope="module")
def graph(teaching_model, saes) -> AttributionGraph:
    return attribution_graph(teaching_model, saes, PROMPT, progress=False)


@pytest.fixture
def fresh(graph) -> AttributionGraph:
    """The graph with no supernodes, its own `supernodes` dict (the views below group nodes into it)."""
    return dataclasses.replace(graph, supernodes={})


@pytest.fixture(scope="module")
def view(graph) -> AttributionGraphView:
    return AttributionGraphView(graph)


def wire(array: dict) -> np.ndarray:
    """A payload array as the browser decodes it: inflated, little-endian."""
    dtype = {"int32": "<i4", "float32": "<f4", "float64": "<f8"}[array["dtype"]]
    data = zlib.decompress(array["data"]) if array.get("compression") == "deflate" else array["data"]
    return np.frombuffer(data, dtype=dtype).reshape(array["shape"])


def strongest_feature(graph: AttributionGraph) -> tuple[str, float]:
    """The feature with the largest |direct edge| into the logit target, and that edge's weight."""
    target = graph.logit_nodes[0].id
    edges = {k: w for k, w in graph.inputs(target).items() if graph.node_type[graph.index(k)] == inf.FEATURE}
    node = max(edges, key=lambda k: abs(edges[k]))
    return node, edges[node]


def test_payload_is_the_graph_around_what_pruning_can_keep(view, graph, saes):
    """Sent: every token and logit and every node some pruning at a node threshold <= 0.99 keeps; edges: exactly the
    graph's edges among sent nodes, in the graph's order, weights bit for bit; influence and its total as the engine
    computes them; labels and clerps as the nodes and the bundled labels files hold them."""
    nodes, edges = view.nodes, view.edges
    index = wire(nodes["index"]).tolist()
    sent = set(index)
    for t in (0.5, 0.8, 0.99):
        assert set(graph.prune(t, 0.98).node_mask.nonzero()[:, 0].tolist()) <= sent
    types = graph.node_type.tolist()
    assert {i for i, t in enumerate(types) if t in (inf.TOKEN, inf.LOGIT)} <= sent
    assert len(sent) < len(graph) and index == sorted(index)
    expected = [(s, d, w) for s, d, w in zip(graph.src.tolist(), graph.dst.tolist(), graph.weight.tolist())
                if s in sent and d in sent]
    src, dst, weight = wire(edges["src"]), wire(edges["dst"]), wire(edges["weight"])
    assert [(index[s], index[d], float(w)) for s, d, w in zip(src, dst, weight)] == expected
    influence = graph.influence()
    assert wire(nodes["influence"]).tolist() == influence[index].tolist()
    assert view.totals["influence"] == float(influence.sort(descending=True).values.sum())
    assert view.totals["nodes"] == len(graph) and view.totals["edges"] == len(graph.src)
    assert nodes["ids"] == [graph.nodes[i].id for i in index]
    assert nodes["labels"] == [graph.nodes[i].label for i in index]
    assert wire(nodes["type"]).tolist() == [types[i] for i in index]
    feature = next(k for k, i in enumerate(index) if types[i] == inf.FEATURE)
    node = graph.nodes[index[feature]]
    assert nodes["clerps"][feature] == saes[node.dictionary].labels[node.feature] != ""
    top = saes[node.dictionary].labels.evidence(node.feature).tokens[0]
    assert nodes["evidence"][feature].startswith(f"{top[0]!r} {top[2]:.3g}")
    assert wire(nodes["activation"])[feature] == pytest.approx(node.activation)
    assert view.tokens == [repr(t) for t in graph.metadata["prompt_tokens"]]


ENTRY = """import { readFileSync } from "node:fs";
import { prune } from %s;
const f = JSON.parse(readFileSync(process.argv[2], "utf8"));
const g = { nodeType: Int32Array.from(f.type), influence: Float64Array.from(f.influence), influenceTotal: f.total,
  logitWeights: Float64Array.from(f.logit), src: Int32Array.from(f.src), dst: Int32Array.from(f.dst),
  weight: Float32Array.from(f.weight) };
const out = f.cases.map(([t, e]) => {
  const m = prune(g, t, e);
  return { nodes: [...m.nodeMask.keys()].filter((i) => m.nodeMask[i]), edges: [...m.edgeMask.keys()].filter((k) => m.edgeMask[k]) };
});
console.log(JSON.stringify(out));
"""


def test_browser_pruning_equals_graph_prune_on_the_teaching_graph(view, graph, tmp_path):
    """js/lib/prune.ts (bundled by esbuild, run in Node) on the payload the browser gets: for 20 threshold pairs its
    kept nodes and edges are exactly those of `graph.prune` on the whole graph of 1,016,081 edges."""
    esbuild = JS / "node_modules" / ".bin" / "esbuild"
    if shutil.which("node") is None or not esbuild.exists():
        pytest.fail("the browser-pruning check needs Node.js and `npm ci --prefix js`.")
    entry = tmp_path / "entry.ts"
    entry.write_text(ENTRY % json.dumps(str(JS / "lib" / "prune.ts")))
    subprocess.run([str(esbuild), str(entry), "--bundle", "--platform=node", "--format=esm", "--log-level=warning",
                    f"--outfile={tmp_path / 'entry.mjs'}"], check=True, timeout=120)
    nodes, edges = view.nodes, view.edges
    cases = [(t, e) for t in (0.3, 0.6, 0.8, 0.9, 0.99) for e in (0.5, 0.9, 0.98, 1.0)]
    fixture = {"type": wire(nodes["type"]).tolist(), "influence": wire(nodes["influence"]).tolist(),
               "total": view.totals["influence"], "logit": wire(nodes["logit_weight"]).tolist(),
               "src": wire(edges["src"]).tolist(), "dst": wire(edges["dst"]).tolist(),
               "weight": wire(edges["weight"]).tolist(), "cases": cases}
    (tmp_path / "graph.json").write_text(json.dumps(fixture))
    run = subprocess.run(["node", str(tmp_path / "entry.mjs"), str(tmp_path / "graph.json")], capture_output=True,
                         text=True, timeout=300, check=True)
    results = json.loads(run.stdout)
    index = wire(nodes["index"])
    src, dst = index[fixture["src"]], index[fixture["dst"]]
    for (t, e), got in zip(cases, results):
        p = graph.prune(t, e)
        assert sorted(index[got["nodes"]].tolist()) == p.node_mask.nonzero()[:, 0].tolist(), (t, e)
        kept = {(int(src[k]), int(dst[k])) for k in got["edges"]}
        assert kept == set(zip(graph.src[p.edge_mask].tolist(), graph.dst[p.edge_mask].tolist())), (t, e)
        assert len(kept) == p.n_edges


def test_faithfulness_reply_is_the_engines_and_its_code_reproduces_it(view, graph):
    p = graph.prune(0.8, 0.98)
    view.set_state({"node_threshold": 0.8, "edge_threshold": 0.98})
    ok, reply = ask(view, "faithfulness", nodes=p.node_mask.nonzero()[:, 0].tolist(), ablation="zero")
    assert ok, reply
    expected = graph.faithfulness(p)
    for key in ("faithfulness", "completeness", "m_model", "m_kept", "m_complement", "m_empty"):
        assert reply[key] == pytest.approx(getattr(expected, key), rel=1e-6, abs=1e-6), key
    assert reply["n_nodes"] == p.n_nodes and reply["ablation"] == "zero" and reply["ms"] > 0
    assert view.shown_nodes == p.node_ids == view.pruning().node_ids
    again = eval(view.history[-1].code, {"graph": graph})  # noqa: S307 - the recorded call, run as a user would
    assert again.faithfulness == pytest.approx(reply["faithfulness"], rel=1e-6, abs=1e-6)


def test_mean_ablation_uses_the_reference_tokens(graph, teaching_model):
    reference = iw.tasks.ioi(teaching_model, n=8, seed=3).clean_tokens
    view = AttributionGraphView(graph, reference=reference)
    assert view.ablations == ["zero", "mean"]
    p = graph.prune(0.8, 0.98)
    ok, reply = ask(view, "faithfulness", nodes=p.node_mask.nonzero()[:, 0].tolist(), ablation="mean")
    assert ok, reply
    expected = graph.faithfulness(p, ablation="mean", reference=reference)
    assert reply["faithfulness"] == pytest.approx(expected.faithfulness, rel=1e-6, abs=1e-6)


def test_a_constrained_ablation_moves_the_target_by_minus_the_features_direct_edge(view, graph):
    """With attention frozen and every layer constrained, only direct effects change: the target moves by exactly
    minus the ablated feature's edge into it, and by plus that edge when the feature is doubled."""
    node, weight = strongest_feature(graph)
    target = graph.logit_nodes[0].id
    ok, reply = ask(view, "intervene", node=node, mode="ablate", factor=0, freeze_attention=True, constrained=True)
    assert ok, reply
    (row,) = reply["targets"]
    assert row["id"] == target and row["after"] - row["before"] == pytest.approx(-weight, abs=1e-3)
    ok, reply = ask(view, "intervene", node=node, mode="steer", factor=2.0, freeze_attention=True, constrained=True)
    assert ok, reply
    assert reply["targets"][0]["after"] - reply["targets"][0]["before"] == pytest.approx(weight, abs=1e-3)


@pytest.mark.parametrize("freeze, constrained", [(True, False), (False, False), (False, True)])
def test_intervention_reply_is_the_engines_and_its_code_reproduces_it(view, graph, freeze, constrained):
    node, _ = strongest_feature(graph)
    ok, reply = ask(view, "intervene", node=node, mode="steer", factor=-1.5, freeze_attention=freeze, constrained=constrained)
    assert ok, reply
    layers = list(range(4)) if constrained else None
    expected = graph.intervene({node: -1.5}, relative=True, freeze_attention=freeze, constrained_layers=layers)
    target = graph.logit_nodes[0].id
    assert reply["targets"][0]["after"] == pytest.approx(expected.targets_after[target], rel=1e-6)
    assert reply["targets"][0]["before"] == pytest.approx(expected.targets_before[target], rel=1e-6)
    assert reply["top_after"]["tokens"] == [t for t, _ in expected.top_after]
    assert reply["mode"] == "steer" and reply["set"] == 1
    again = eval(view.history[-1].code, {"graph": graph})  # noqa: S307
    assert again.targets_after[target] == pytest.approx(reply["targets"][0]["after"], rel=1e-6)


def test_group_keeps_the_supernode_in_the_graph_its_export_and_the_view(fresh):
    view = AttributionGraphView(fresh)
    index = wire(view.nodes["index"]).tolist()
    features = [i for i in index if int(fresh.node_type[i]) == inf.FEATURE][:3]
    ids = [fresh.nodes[i].id for i in features]
    ok, reply = ask(view, "group", name=" names ", nodes=features)
    assert ok, reply
    assert reply["name"] == "names" and fresh.supernodes == {"names": ids} and view.supernodes == {"names": ids}
    assert AttributionGraph.from_json(fresh.to_json()).supernodes == {"names": ids}
    assert view.history[-1].code == f"graph.group('names', {ids!r})"
    ok, error = ask(view, "group", name="names", nodes=features[:1])
    assert not ok and "exists already" in error
    ok, error = ask(view, "group", name="other", nodes=features[1:])
    assert not ok and "belong to the supernode(s) ['names']" in error
    ok, reply = ask(view, "intervene", node="names", mode="ablate", factor=0, freeze_attention=True, constrained=False)
    assert ok and reply["set"] == 3 and reply["label"] == "names"
    expected = fresh.intervene({fid: 0.0 for fid in ids})
    assert reply["targets"][0]["after"] == pytest.approx(expected.targets_after[fresh.logit_nodes[0].id], rel=1e-6)
    ok, reply = ask(view, "ungroup", name="names")
    assert ok and fresh.supernodes == {} and view.supernodes == {}


def test_open_shows_the_node_feature_in_the_dashboard(graph, teaching_model, saes):
    dashboard = FeatureDashboard(teaching_model, saes, corpus=iw.tasks.ioi(teaching_model, n=4, seed=0).clean_tokens)
    view = AttributionGraphView(graph, dashboard=dashboard)
    assert list(view.actions) == ["select", "open", "ablate", "steer"]
    node = graph.node(strongest_feature(graph)[0])
    ok, reply = ask(view, "open", node=node.id)
    assert ok, reply
    assert (dashboard.hook, dashboard.feature) == (node.dictionary, node.feature) == (reply["hook"], reply["feature"])
    ok, error = ask(view, "open", node=graph.nodes[graph.of_type("error")[0]].id)
    assert not ok and "is not a dictionary feature" in error


BAD = [
    ("faithfulness", {"nodes": ["SENT"]}, "ablation must be one of ['zero']"),
    ("faithfulness", {"nodes": ["SENT"], "ablation": "mean"}, "ablation must be one of ['zero']"),
    ("faithfulness", {"nodes": "all", "ablation": "zero"}, "nodes must be a list of 1 to"),
    ("faithfulness", {"nodes": [], "ablation": "zero"}, "nodes must be a list of 1 to"),
    ("faithfulness", {"nodes": [True], "ablation": "zero"}, "must hold integer node indices"),
    ("faithfulness", {"nodes": [10**9], "ablation": "zero"}, "are not indices of nodes this view shows"),
    ("faithfulness", {"nodes": [-1], "ablation": "zero"}, "are not indices of nodes this view shows"),
    ("faithfulness", {"nodes": ["x"], "ablation": "zero"}, "must hold integer node indices"),
    ("faithfulness", {"nodes": ["SENT"], "ablation": "zero", "extra": 1}, "unexpected parameters ['extra']"),
    ("intervene", {"node": "nope", "mode": "ablate", "factor": 0, "freeze_attention": True, "constrained": False},
     "node must be the id of a node of this graph, got 'nope'"),
    ("intervene", {"node": "embed@3", "mode": "ablate", "factor": 0, "freeze_attention": True, "constrained": False},
     "holds no feature node to set"),
    ("intervene", {"node": "FEATURE", "mode": "boost", "factor": 0, "freeze_attention": True, "constrained": False},
     "mode must be one of ['ablate', 'steer']"),
    ("intervene", {"node": "FEATURE", "mode": "steer", "factor": math.nan, "freeze_attention": True, "constrained": False},
     "factor must be a number between -20 and 20"),
    ("intervene", {"node": "FEATURE", "mode": "steer", "factor": 1e9, "freeze_attention": True, "constrained": False},
     "factor must be a number between -20 and 20"),
    ("intervene", {"node": "FEATURE", "mode": "steer", "factor": "2", "freeze_attention": True, "constrained": False},
     "factor must be a number"),
    ("intervene", {"node": "FEATURE", "mode": "ablate", "factor": 0, "freeze_attention": "yes", "constrained": False},
     "freeze_attention must be true or false"),
    ("intervene", {"node": "FEATURE", "mode": "ablate", "factor": 0, "freeze_attention": True}, "constrained must be true"),
    ("open", {"node": "FEATURE"}, "no dashboard is attached"),
    ("group", {"name": "  ", "nodes": ["SENT"]}, "name must be a non-empty text"),
    ("group", {"name": "x" * 61, "nodes": ["SENT"]}, "at most 60 characters"),
    ("group", {"name": "FEATURE", "nodes": ["SENT"]}, "is a node id; give the supernode another name"),
    ("group", {"name": "pair", "nodes": ["SENT", "SENT"]}, "repeats node indices"),
    ("ungroup", {"name": "never"}, "name must be one of the supernodes []"),
    ("prune", {}, "unknown method 'prune'"),
]


@pytest.mark.parametrize("method, params, message", BAD, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(BAD)])
def test_bad_requests_are_answered_with_a_clear_error(fresh, method, params, message):
    view = AttributionGraphView(fresh)
    feature = fresh.nodes[int(fresh.of_type("feature")[0])].id
    first = int(wire(view.nodes["index"])[0])
    params = {k: feature if v == "FEATURE" else [first if i == "SENT" else i for i in v] if isinstance(v, list) else v
              for k, v in params.items()}
    message = message.replace("FEATURE", feature)
    ok, error = ask(view, method, **params)
    assert not ok and message in error, error
    assert view.history == [] and fresh.supernodes == {}


def test_thresholds_are_the_only_traits_the_browser_sets_and_stay_in_range(graph):
    view = AttributionGraphView(graph, max_node_threshold=0.9, node_threshold=0.7, edge_threshold=0.9)
    sent: list = []
    view.send = lambda content, buffers=None: sent.append(content)
    view.set_state({"node_threshold": 0.85, "edge_threshold": 0.5})
    assert (view.node_threshold, view.edge_threshold) == (0.85, 0.5)
    assert view.pruning().node_ids == graph.prune(0.85, 0.5).node_ids
    for bad in ({"node_threshold": 0.95}, {"edge_threshold": -0.1}, {"node_threshold": "0.5"}, {"title": "x"}):
        view.set_state(bad)
        assert "rejected update" in sent[-1]["error"]
    assert "max_node_threshold=0.9" in sent[0]["error"]
    assert (view.node_threshold, view.edge_threshold) == (0.85, 0.5)
    assert view.limits["node_threshold"] == [0.0, 0.9]
    with pytest.raises(ValueError, match="max_node_threshold must be in"):
        AttributionGraphView(graph, max_node_threshold=0)


def test_a_graph_read_from_a_file_prunes_but_cannot_run(graph):
    loaded = AttributionGraph.from_json(graph.to_json())
    view = AttributionGraphView(loaded)
    assert list(view.actions) == ["select"] and view.limits["runs"] is False
    assert view.nodes["ids"] == AttributionGraphView(graph).nodes["ids"]
    ok, error = ask(view, "faithfulness", nodes=[int(wire(view.nodes["index"])[0])], ablation="zero")
    assert not ok and "this graph was read from a file" in error


def test_iw_show_finds_the_view_and_the_static_preview_names_the_counts(graph):
    view = iw.view(graph)
    assert isinstance(view, AttributionGraphView)
    p = graph.prune(0.8, 0.98)
    html = view._static_html()
    assert f"{p.n_nodes} of {len(graph)} nodes" in html and "&lt;" not in view.title
    assert view.title.startswith("Attribution graph \u00b7 When Mary")
    with pytest.raises(TypeError, match="needs an iw.circuits.AttributionGraph"):
        AttributionGraphView(p)
    assert torch.equal(view.graph.src, graph.src)
