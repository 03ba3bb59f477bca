"""Attribution graphs: pruning and scores on hand-built graphs whose answers are computed by hand here, and the
teaching model's graph checked against the real model (every row sums to the real pre-activation or logit), the
linear graph's own contributions, interventions against hand-written hooks, and faithfulness at its two ends."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits import influence as inf
from interpwidgets.circuits.attribution_graph import AttributionGraph, attribution_graph
from interpwidgets.circuits.graph import Node
from interpwidgets.circuits.linear_graph import LogitTarget

EXACT = 1e-4
F, E, T, B, L = inf.FEATURE, inf.ERROR, inf.TOKEN, inf.BIAS, inf.LOGIT


def hand_graph(kinds: list[int], edges: list[tuple[int, int, float]], logit_weights: list[float]) -> AttributionGraph:
    nodes = [Node(f"n{i}", 0, "mlp", i, 0) for i in range(len(kinds))]
    src, dst, w = zip(*edges)
    n = len(kinds)
    return AttributionGraph(nodes, torch.tensor(kinds, dtype=torch.int8), torch.tensor(src), torch.tensor(dst),
                            torch.tensor(w, dtype=torch.float32), torch.full((n,), float("nan")), torch.zeros(n),
                            torch.tensor(logit_weights))


# nodes: 0 f_a, 1 f_b, 2 error, 3 f_c, 4 token, 5 logit (weight 1)
#   token -> f_a 2 | token -> f_b 1 | f_c -> f_b 1 | token -> f_c 1 | f_a -> logit 3 | f_b -> logit -1 | error -> logit 1
# row-normalised |A|: logit row (3, 1, 1)/5 = f_a .6, f_b .2, error .2; f_b row: token .5, f_c .5; f_a, f_c rows: token 1
# influence = l N + l N^2 + l N^3: f_a .6, f_b .2, error .2; then token .6 + .1, f_c .1; then token .1 more:
#   f_a .6, f_b .2, error .2, f_c .1, token .8, logit 0 (total 1.9)
HAND = dict(kinds=[F, F, E, F, T, L],
            edges=[(4, 0, 2.0), (4, 1, 1.0), (3, 1, 1.0), (4, 3, 1.0), (0, 5, 3.0), (1, 5, -1.0), (2, 5, 1.0)],
            logit_weights=[0, 0, 0, 0, 0, 1.0])


def test_influence_of_a_hand_built_graph_is_the_hand_computed_path_sum():
    """Influence = l @ (N + N^2 + ...) with N the row-normalised |adjacency| (circuit-tracer's definition)."""
    g = hand_graph(**HAND)
    assert torch.allclose(g.influence(), torch.tensor([0.6, 0.2, 0.2, 0.1, 0.8, 0.0], dtype=torch.float64), atol=1e-12)


def test_node_threshold_keeps_the_most_influential_nodes_and_always_tokens_and_logits():
    """Sorted influence .8 (token) .6 (f_a) .2 .2 .1 0 over 1.9: cumulative .421 .737 .842 ...; a node threshold of
    0.7 first reaches .737 at f_a, so the nodes of influence >= .6 stay: token, f_a, and the logit. Edge pruning then
    sees token -> f_a -> logit alone (each row normalised to 1, edge scores 1 and 1) and keeps both."""
    p = hand_graph(**HAND).prune(node_threshold=0.7, edge_threshold=0.98)
    assert p.node_mask.tolist() == [True, False, False, False, True, True]
    assert p.edge_mask.tolist() == [True, False, False, False, True, False, False]


def test_edge_threshold_and_the_cleanup_drop_features_without_inputs_or_outputs():
    """All nodes kept (0.99 reaches down to .1). Edge scores N * (influence + l) of the destination:
    f_a->logit .6, token->f_a .6, f_b->logit .2, error->logit .2, token->f_b .1, f_c->f_b .1, token->f_c .1 (total 1.9;
    cumulative .316 .632 .737 .842 .895 ...). An edge threshold of 0.8 first reaches .842, so edges of score >= .2 stay:
    f_b then has an output but no input (a feature needs both) and goes, with its edge; f_c has no output and goes;
    the error node keeps its edge to the logit."""
    p = hand_graph(**HAND).prune(node_threshold=0.99, edge_threshold=0.8)
    assert p.node_mask.tolist() == [True, False, True, False, True, True]
    kept = {HAND["edges"][i][:2] for i in p.edge_mask.nonzero()[:, 0].tolist()}
    assert kept == {(4, 0), (0, 5), (2, 5)}


def test_replacement_and_completeness_scores_of_the_hand_built_graph():
    """replacement = token / (token + error) influence = .8 / 1.0; completeness = sum over nodes of (1 - error share of
    its inputs) * (influence + l) / sum of (influence + l): only the logit row has an error share (.2), so
    (.6 + .2 + .2 + .1 + .8 + 1 * .8) / 2.9."""
    s = hand_graph(**HAND).scores()
    assert s.replacement == pytest.approx(0.8, abs=1e-12)
    assert s.completeness == pytest.approx(2.7 / 2.9, abs=1e-12)


def test_bias_nodes_count_as_sources_that_are_not_errors_and_are_pruned_like_errors():
    """logit <- token 1, bias 1, error 2: influence .25, .25, .5; replacement (.25 + .25) / 1 = .5; completeness
    (.25 + .25 + .5 + 1 * .5) / 2 = .75. With an edge threshold of 0.5 only the error's edge (score .5 of 1) stays:
    the bias node loses its only output and goes, the token stays (tokens always do)."""
    g = hand_graph([T, B, E, L], [(0, 3, 1.0), (1, 3, 1.0), (2, 3, -2.0)], [0, 0, 0, 1.0])
    assert g.scores().replacement == pytest.approx(0.5)
    assert g.scores().completeness == pytest.approx(0.75)
    p = g.prune(node_threshold=1.0, edge_threshold=0.5)
    assert p.node_mask.tolist() == [True, False, True, True]


def test_thresholds_outside_zero_to_one_are_refused():
    with pytest.raises(ValueError, match="node_threshold must be between 0 and 1"):
        hand_graph(**HAND).prune(node_threshold=1.5)


def test_a_cycle_is_reported_not_looped_forever():
    g = hand_graph([F, F, L], [(0, 1, 1.0), (1, 0, 1.0), (1, 2, 1.0)], [0, 0, 1.0])
    with pytest.raises(RuntimeError, match="cycle"):
        g.influence()


# ---- the teaching model ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def teaching():
    model = iw.load_model()
    saes = iw.sae.pretrained(model)
    task = iw.tasks.ioi(model, n=8, seed=0)
    return model, saes, task


@pytest.fixture(scope="module")
def graph(teaching):
    model, saes, task = teaching
    return attribution_graph(model, saes, task.clean_tokens[:1], progress=False)


def real_values(model, saes, tokens) -> tuple[dict, torch.Tensor]:
    """The real model's transcoder pre-activations `{layer: [seq, d_sae]}` and logits `[seq, vocab]`."""
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    pre = {layer: saes[f"blocks.{layer}.ln2.hook_normalized"].encode_pre(cache[f"blocks.{layer}.ln2.hook_normalized"])[0]
           for layer in range(model.cfg.n_layers)}
    return pre, logits[0]


def incoming(g: AttributionGraph) -> torch.Tensor:
    return torch.zeros(len(g), dtype=torch.float64).index_add_(0, g.dst, g.weight.double())


def test_every_row_sums_to_the_real_models_pre_activation_or_demeaned_logit(teaching, graph):
    """Exactness: each feature's incoming edges sum to its pre-activation in the real model's forward, and the logit
    target's to logit(t) - mean(logits) of the real model, within 1e-4 (no feature left out at this budget)."""
    model, saes, task = teaching
    pre, logits = real_values(model, saes, task.clean_tokens[:1])
    sums = incoming(graph)
    for i in graph.of_type("feature").tolist():
        n = graph.nodes[i]
        assert abs(float(sums[i]) - float(pre[n.layer][n.position, n.feature])) < EXACT, n.id
    for node in graph.logit_nodes:
        i = graph.index(node.id)
        row = logits[node.position]
        assert abs(float(sums[i]) - float(row[node.feature] - row.mean())) < EXACT
    assert graph.metadata["n_active_features"] == len(graph.of_type("feature"))


def test_edges_equal_the_linear_graphs_contributions(graph):
    """The batched rows agree with `LinearGraph.contributions` (batched-gradient backward and bias-parameter gradients,
    another code path) for the logit target and the most active feature."""
    lg = graph.linear
    logit = graph.logit_nodes[0]
    row = lg.logits[0, logit.position]
    features = graph.of_type("feature").tolist()
    top = max(features, key=lambda i: graph.nodes[i].activation)
    node = graph.nodes[top]
    for target_id, scalar in ((logit.id, row[logit.feature] - row.mean()),
                              (node.id, lg.pre[f"mlp{node.layer}"][0, node.position, node.feature])):
        expected = {lg.node(*k).id: v for k, v in lg.contributions(scalar).items()}
        got = graph.inputs(target_id)
        assert set(got) <= set(expected)
        assert max(abs(expected[k] - got.get(k, 0.0)) for k in expected) < 1e-5


def test_a_feature_budget_keeps_the_rows_exact_and_puts_the_left_out_features_in_the_remainder(teaching, graph):
    """With max_feature_nodes=150 the graph holds 150 features; each kept row's edges are the full graph's, and its
    remainder is exactly the sum of the full graph's edges from the features left out."""
    model, saes, task = teaching
    small = attribution_graph(model, saes, task.clean_tokens[:1], max_feature_nodes=150, progress=False)
    assert len(small.of_type("feature")) == 150
    kept = {small.nodes[i].id for i in small.of_type("feature").tolist()}
    for node in small.logit_nodes:
        full = graph.inputs(node.id)
        left_out = sum(w for k, w in full.items() if graph.node_type[graph.index(k)] == F and k not in kept)
        assert small.remainder[small.index(node.id)] == pytest.approx(left_out, abs=1e-3)
        for k, w in small.inputs(node.id).items():
            assert w == pytest.approx(full[k], abs=1e-5)
    # the budget goes to the features that matter: the full graph's 20 most influential features are kept
    influence = graph.influence()
    top = sorted(graph.of_type("feature").tolist(), key=lambda i: -float(influence[i]))[:20]
    assert {graph.nodes[i].id for i in top} <= kept


def test_building_restores_every_parameter_bit_for_bit_and_leaves_no_hooks(teaching):
    """The bias-only runs zero biases for a moment: afterwards the model and SAEs are exactly as before."""
    model, saes, task = teaching
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sae_before = {h: {k: v.clone() for k, v in s.state_dict().items()} for h, s in saes.items()}
    attribution_graph(model, saes, task.clean_tokens[:1], max_feature_nodes=10, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(sae_before[h][k], v) for h, s in saes.items() for k, v in s.state_dict().items())
    assert not any(hp.fwd_hooks or hp.bwd_hooks for hp in model.hook_dict.values())


def test_logit_difference_and_direction_targets_sum_to_the_real_model(teaching):
    """targets= a LogitTarget (answer - wrong) and a direction over the vocabulary: the rows sum to those quantities
    read off the real model's logits."""
    model, saes, task = teaching
    tokens = task.clean_tokens[:1]
    answer, wrong = int(task.answer_tokens[0]), int(task.wrong_tokens[0])
    _, logits = real_values(model, saes, tokens)
    g = attribution_graph(model, saes, tokens, LogitTarget(answer, wrong), max_feature_nodes=0, progress=False)
    (node,) = g.logit_nodes
    assert float(incoming(g)[g.index(node.id)] + g.remainder[g.index(node.id)]) == pytest.approx(
        float(logits[-1, answer] - logits[-1, wrong]), abs=EXACT)
    direction = torch.randn(model.cfg.d_vocab, generator=torch.Generator().manual_seed(0))
    g = attribution_graph(model, saes, tokens, direction, max_feature_nodes=0, progress=False)
    (node,) = g.logit_nodes
    i = g.index(node.id)
    assert float(incoming(g)[i] + g.remainder[i]) == pytest.approx(float(logits[-1] @ direction), abs=1e-3)


def test_default_targets_cover_the_probability_mass_up_to_the_limit(teaching):
    """The most likely next tokens until 95% (at most max_n_logits), each weighted by its probability."""
    model, saes, task = teaching
    g = attribution_graph(model, saes, "When Mary and John went to the", max_feature_nodes=0, max_n_logits=3,
                          progress=False)
    probs = torch.softmax(model(model.to_tokens("When Mary and John went to the"))[0, -1].double(), -1)
    top = probs.argsort(descending=True)[:3].tolist()
    ids = [n.feature for n in g.logit_nodes]
    assert ids == top[: len(ids)]
    assert len(ids) == 3 or float(probs[ids].sum()) >= 0.95
    assert g.logit_weights[g.of_type("logit")].tolist() == pytest.approx(probs[ids].tolist(), abs=1e-6)


def test_bad_targets_are_refused_with_the_fix(teaching):
    model, saes, task = teaching
    with pytest.raises(ValueError, match="token id"):
        attribution_graph(model, saes, task.clean_tokens[:1], [10 ** 6], progress=False)
    with pytest.raises(ValueError, match=r"\[d_vocab\]"):
        attribution_graph(model, saes, task.clean_tokens[:1], torch.ones(3), progress=False)


# ---- interventions and faithfulness ----------------------------------------------------------------------
def strongest_feature_into(graph: AttributionGraph, target: str) -> tuple[str, float]:
    ins = graph.inputs(target)
    feature = max((k for k in ins if graph.node_type[graph.index(k)] == F), key=lambda k: abs(ins[k]))
    return feature, ins[feature]


def test_ablating_a_feature_with_every_layer_constrained_moves_the_target_by_exactly_its_edge(graph):
    """Attention and norms frozen and every layer's features and errors held: only the direct path is left, so the
    target drops by exactly the edge weight (the graph's claim, tested by running the model)."""
    target = graph.logit_nodes[0].id
    feature, weight = strongest_feature_into(graph, target)
    r = graph.intervene({feature: 0.0}, constrained_layers=range(graph.linear.n_layers))
    assert r.targets_after[target] - r.targets_before[target] == pytest.approx(-weight, abs=1e-4)


def test_setting_a_feature_to_its_own_value_changes_nothing(graph):
    feature, _ = strongest_feature_into(graph, graph.logit_nodes[0].id)
    r = graph.intervene({feature: graph.node(feature).activation}, freeze_attention=False)
    assert torch.allclose(r.logits_after, r.logits_before, atol=1e-4)


def hand_ablated_logits(model, saes, tokens, layer: int, position: int, feature: int) -> torch.Tensor:
    """The real model with one transcoder feature's decoder contribution removed at one position (computed from the
    live input), everything else running as usual: a hook written out by hand."""
    tc = saes[f"blocks.{layer}.ln2.hook_normalized"]
    seen = {}

    def read(x, hook):
        seen["x"] = x
        return x

    def write(out, hook):
        out = out.clone()
        out[:, position] -= tc.encode(seen["x"])[:, position, feature, None] * tc.W_dec[feature]
        return out

    with torch.no_grad(), model.hooks(fwd_hooks=[(f"blocks.{layer}.ln2.hook_normalized", read),
                                                 (f"blocks.{layer}.hook_mlp_out", write)]):
        return model(tokens)[0, -1]


def test_an_unconstrained_ablation_is_the_real_model_with_that_feature_removed(teaching, graph):
    model, saes, task = teaching
    feature, _ = strongest_feature_into(graph, graph.logit_nodes[0].id)
    node = graph.node(feature)
    r = graph.intervene({feature: 0.0}, freeze_attention=False)
    expected = hand_ablated_logits(model, saes, task.clean_tokens[:1], node.layer, node.position, node.feature)
    assert torch.allclose(r.logits_after, expected, atol=1e-4)


def test_faithfulness_is_one_for_the_whole_graph_zero_for_nothing_and_real_in_between(teaching, graph):
    """Keeping every node leaves the model as it is (faithfulness 1); keeping none is the empty circuit (0); keeping
    all but one feature gives the metric of the real model with that feature removed (a hand-written hook), summed
    over every logit target."""
    model, saes, task = teaching
    everything = [n.id for n in graph.nodes]
    assert graph.faithfulness(everything).faithfulness == pytest.approx(1.0, abs=1e-5)
    assert graph.faithfulness([]).faithfulness == pytest.approx(0.0, abs=1e-9)
    feature, _ = strongest_feature_into(graph, graph.logit_nodes[0].id)
    node = graph.node(feature)
    f = graph.faithfulness([i for i in everything if i != feature])
    logits = hand_ablated_logits(model, saes, task.clean_tokens[:1], node.layer, node.position, node.feature)
    # the metric is every logit target's demeaned logit weighted by its probability, summed
    expected = sum(float(graph.logit_weights[graph.index(t.id)]) * float(logits[t.feature] - logits.mean())
                   for t in graph.logit_nodes)
    assert f.m_kept == pytest.approx(expected, abs=1e-4)


def test_mean_ablation_needs_reference_tokens(graph):
    with pytest.raises(ValueError, match="reference="):
        graph.faithfulness([], ablation="mean")


# ---- supernodes and files --------------------------------------------------------------------------------
def test_supernodes_group_real_nodes_and_an_intervention_on_one_sets_every_member(graph):
    features = [graph.nodes[i].id for i in graph.of_type("feature")[:3].tolist()]
    graph.group("three features", features)
    try:
        r = graph.intervene({"three features": 0.0}, freeze_attention=False)
        assert set(r.values) == set(features) and set(r.values.values()) == {0.0}
        with pytest.raises(KeyError, match="No node"):
            graph.group("bad", ["not a node"])
        with pytest.raises(ValueError, match="node id"):
            graph.group(features[0], features)
    finally:
        graph.ungroup("three features")


def test_own_json_round_trips_exactly(graph, tmp_path):
    graph.group("pair", [graph.nodes[0].id, graph.nodes[1].id])
    try:
        path = tmp_path / "graph.json"
        graph.to_json(path)
        back = AttributionGraph.from_json(path)
    finally:
        graph.ungroup("pair")
    assert back.nodes == graph.nodes and back.supernodes == {"pair": [graph.nodes[0].id, graph.nodes[1].id]}
    for name in ("src", "dst", "weight", "node_type", "remainder", "logit_weights"):
        assert torch.equal(getattr(back, name), getattr(graph, name)), name
    assert torch.equal(back.values.isnan(), graph.values.isnan())
    assert back.prune().node_mask.tolist() == graph.prune().node_mask.tolist()
    with pytest.raises(ValueError, match="holds no model"):
        back.intervene({graph.nodes[0].id: 0.0})


def test_a_truncated_file_is_refused_with_a_clear_error(graph, tmp_path):
    path = tmp_path / "graph.json"
    path.write_text(graph.to_json()[:500])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        AttributionGraph.from_json(path)


# ---- graph diffs -----------------------------------------------------------------------------------------
def test_a_diff_of_two_hand_built_graphs_ranks_what_moved_by_hand():
    """b adds 1 to f_a -> logit (3 -> 4) and drops error -> logit: the edge changes are +1, -1 and 0 for the rest;
    in b the logit row is (4, 1) over f_a, f_b: f_a's influence .8 (a: .6), the error's 0 (a: .2)."""
    a = hand_graph(**HAND)
    edges = [e if e[:2] != (0, 5) else (0, 5, 4.0) for e in HAND["edges"] if e[:2] != (2, 5)]
    b = hand_graph(HAND["kinds"], edges, HAND["logit_weights"])
    d = iw.circuits.graph_diff(a, b)
    moved = {(c.src, c.dst): c.change for c in d.edges(10)}
    assert moved[("n0", "n5")] == pytest.approx(1.0) and moved[("n2", "n5")] == pytest.approx(-1.0)
    assert sum(abs(v) for v in moved.values()) == pytest.approx(2.0)
    by_id = {c.id: c for c in d.node_changes}
    assert by_id["n0"].influence == pytest.approx((0.6, 0.8)) and by_id["n2"].influence == pytest.approx((0.2, 0.0))
    assert d.nodes(1)[0].id in ("n0", "n2")  # both moved by .2, the most of any node


def test_a_diff_of_clean_and_corrupt_prunings_on_the_teaching_model(teaching, graph):
    """A pruning compares only what it keeps; the names and units reach the table."""
    model, saes, task = teaching
    corrupt = attribution_graph(model, saes, task.corrupt_tokens[:1], max_feature_nodes=300, progress=False)
    d = iw.circuits.graph_diff(graph.prune(), corrupt.prune(), names=("clean", "corrupt"))
    frame = d.to_dataframe()
    assert {"influence_clean", "influence_corrupt", "change"} <= set(frame.columns)
    kept = set(graph.prune().node_ids) | set(corrupt.prune().node_ids)
    assert set(frame["id"]) == kept


def test_a_diff_shows_itself_as_a_two_panel_figure():
    """iw.show / the extension display a GraphDiff as a PNG of its two bar panels, titled with the graphs' names."""
    d = iw.circuits.graph_diff(hand_graph(**HAND), hand_graph(**HAND), names=("clean", "corrupt"))
    view = iw.view(d)
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"].startswith("GraphDiff clean -> corrupt") and len(bundle["image/png"]) > 1000
