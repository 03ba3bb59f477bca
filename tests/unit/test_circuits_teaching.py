"""Circuits on the trained teaching model with its bundled SAEs and transcoders (small samples)."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits.effects import node_effects
from interpwidgets.circuits.faithfulness import faithfulness, size_at_faithfulness
from interpwidgets.circuits.feature_circuit import feature_circuit
from interpwidgets.circuits.graph import Circuit
from interpwidgets.circuits.hierarchical import hierarchical_attribution
from interpwidgets.circuits.linear_graph import LogitTarget, linear_graph


@pytest.fixture(scope="module")
def saes(teaching_model):
    return iw.sae.pretrained(teaching_model)


def test_a_small_ioi_feature_circuit_is_faithful(teaching_model, saes):
    task = iw.tasks.ioi(teaching_model, n=8, seed=5)
    effects = node_effects(teaching_model, saes, task.clean_tokens, task.corrupt_tokens, task.metric,
                           method="atp", progress=False)
    score = size_at_faithfulness(teaching_model, saes, task, effects, level=0.8, progress=False)
    assert score is not None and score.n_nodes < 0.05 * effects.n_nodes  # a few percent of the nodes carry the task
    circuit = feature_circuit(teaching_model, saes, task, effects=effects, node_threshold=0.0, top_n=score.n_nodes,
                              edges=False, progress=False)
    r = faithfulness(teaching_model, saes, task, circuit)
    assert r.faithfulness >= 0.8 and r.faithfulness == pytest.approx(score.faithfulness, abs=1e-5)
    assert r.completeness < 0.5  # ablating the circuit removes most of the behaviour


@pytest.mark.parametrize("make_task", [iw.tasks.ioi, iw.tasks.induction, iw.tasks.brackets])
def test_linear_graph_contributions_sum_exactly_on_the_trained_model(teaching_model, saes, make_task):
    task = make_task(teaching_model, n=1, seed=2)
    graph = linear_graph(teaching_model, saes, task.clean_tokens[0])
    attr = graph.attribute(LogitTarget(int(task.answer_tokens[0]), int(task.wrong_tokens[0])))
    assert attr.value > 0  # the model solves this prompt
    assert abs(attr.remainder) < 1e-4
    feature = max(graph.active_features("mlp", layer=teaching_model.cfg.n_layers - 1), key=graph.activation)
    assert abs(graph.attribute(feature).remainder) < 1e-4


def test_ablating_a_linear_graph_circuit_ablates_its_transcoder_features(teaching_model, saes):
    """The bundled set holds an MLP-output SAE and a transcoder at every layer, of the same width in layers 1-3.
    A linear-graph circuit's "mlp" nodes are transcoder features; they used to be ablated in the MLP-output
    SAE (same indices, nothing raised). Expected: those transcoder features' decoder contributions removed by
    hand at the MLP output, at every position."""
    task = iw.tasks.ioi(teaching_model, n=2, seed=2)
    graph = linear_graph(teaching_model, saes, task.clean_tokens[0])
    target = LogitTarget(int(task.answer_tokens[0]), int(task.wrong_tokens[0]))
    circuit = hierarchical_attribution(graph, target, depth=2, progress=False)
    top = sorted((n for n in circuit.features("mlp") if n.layer > 0), key=lambda n: -abs(n.effect))[:4]
    by_layer = {layer: sorted({n.feature for n in top if n.layer == layer}) for layer in {n.layer for n in top}}
    assert top and all(saes[f"blocks.{layer}.hook_mlp_out"].cfg.d_sae > max(idx) for layer, idx in by_layer.items())

    def by_hand(layer: int, idx: list[int]) -> list:
        tc = saes[f"blocks.{layer}.ln2.hook_normalized"]
        store = {}

        def read(x, hook):
            store["f"] = tc.encode(x)[..., idx]
            return x

        def write(y, hook):
            return y - store.pop("f") @ tc.W_dec[idx]

        return [(f"blocks.{layer}.ln2.hook_normalized", read), (f"blocks.{layer}.hook_mlp_out", write)]

    tokens = task.clean_tokens
    with torch.no_grad():
        ablated = iw.sae.ablate_features(teaching_model, saes, Circuit(top)).run(tokens)
        expected = teaching_model.run_with_hooks(tokens, fwd_hooks=[h for layer, idx in by_layer.items() for h in by_hand(layer, idx)])
        mlp_sae = iw.sae.ablate_features(teaching_model, saes, {f"blocks.{layer}.hook_mlp_out": idx for layer, idx in by_layer.items()})
        wrong = mlp_sae.run(tokens)
    torch.testing.assert_close(ablated, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(wrong, expected, atol=1e-3)
