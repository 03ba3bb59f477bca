"""Attribution graphs on every row of the family matrix (the teaching architecture and a tiny random model of each
Hugging Face family) with random JumpReLU transcoders: every row of the graph sums to the real model's own value
(a transcoder pre-activation from its forward, a demeaned logit, before the soft-cap on Gemma 2), pruning and scores
run, a fully constrained ablation moves the target by exactly its edge, and keeping every node is faithful."""

from __future__ import annotations

import pytest
import torch
from test_linear_graph_families import dictionaries, real_target_logits

import interpwidgets as iw
from interpwidgets.circuits.attribution_graph import AttributionGraph, attribution_graph

EXACT = 1e-4


@pytest.fixture(scope="module")
def built(family_model):
    model = family_model
    saes = dictionaries(model)
    tokens = iw.tasks.ioi(model, n=1, seed=0).clean_tokens[:1, :9]  # "<bos> When A and B went to the place ,"
    return model, saes, tokens, attribution_graph(model, saes, tokens, max_n_logits=3, progress=False)


def test_every_row_sums_to_the_real_models_value(built):
    """Exactness on every architecture: feature rows sum to encode_pre of the real forward's transcoder input, logit
    rows to logit(t) - mean(logits) of the real forward (pre-cap on soft-capped models), within 1e-4 plus float32
    rounding of the contributions' size (1e-6 of the sum of their |values|: on random Llama-style models the
    first position's norm scales make contributions of ~1e4 that cancel to ~0.1)."""
    model, saes, tokens, g = built
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    logits = real_target_logits(model, tokens)[0]
    sums = torch.zeros(len(g), dtype=torch.float64).index_add_(0, g.dst, g.weight.double())
    sizes = torch.zeros(len(g), dtype=torch.float64).index_add_(0, g.dst, g.weight.double().abs())
    bound = EXACT + 1e-6 * sizes
    assert len(g.of_type("feature")) == g.metadata["n_active_features"] > 0
    pre = {layer: saes[f"blocks.{layer}.ln2.hook_normalized"].encode_pre(cache[f"blocks.{layer}.ln2.hook_normalized"])[0]
           for layer in range(model.cfg.n_layers)}
    for i in g.of_type("feature").tolist():
        n = g.nodes[i]
        assert abs(float(sums[i]) - float(pre[n.layer][n.position, n.feature])) < bound[i], n.id
    for node in g.logit_nodes:
        row = logits[node.position]
        i = g.index(node.id)
        assert abs(float(sums[i]) - float(row[node.feature] - row.mean())) < bound[i]


def test_pruning_and_scores_run_and_keep_a_connected_graph(built):
    """Every kept feature has a kept input and output; the scores are fractions."""
    g: AttributionGraph = built[3]
    p = g.prune()
    edges_src, edges_dst = g.src[p.edge_mask], g.dst[p.edge_mask]
    for i in p.node_mask.nonzero()[:, 0].tolist():
        if g.node_type[i] == 0:
            assert bool((edges_src == i).any()) and bool((edges_dst == i).any())
    for s in (g.scores(), p.scores()):
        assert 0.0 <= s.replacement <= 1.0 and 0.0 <= s.completeness <= 1.0


def test_a_fully_constrained_ablation_moves_the_target_by_its_edge(built):
    g = built[3]
    target = g.logit_nodes[0].id
    ins = {k: w for k, w in g.inputs(target).items() if g.node_type[g.index(k)] == 0}
    feature = max(ins, key=lambda k: abs(ins[k]))
    r = g.intervene({feature: 0.0}, constrained_layers=range(g.linear.n_layers))
    assert r.targets_after[target] - r.targets_before[target] == pytest.approx(-ins[feature], abs=1e-4)


def test_keeping_every_node_is_faithful(built):
    g = built[3]
    assert g.faithfulness([n.id for n in g.nodes]).faithfulness == pytest.approx(1.0, abs=1e-4)
