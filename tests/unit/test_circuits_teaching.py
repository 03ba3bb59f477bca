"""Circuits on the trained teaching model with its bundled SAEs and transcoders (small samples)."""

from __future__ import annotations

import pytest

import interpwidgets as iw
from interpwidgets.circuits.effects import node_effects
from interpwidgets.circuits.faithfulness import faithfulness, size_at_faithfulness
from interpwidgets.circuits.feature_circuit import feature_circuit
from interpwidgets.circuits.linear_graph import LogitTarget, linear_graph


@pytest.fixture(scope="module")
def saes(teaching_model):
    return iw.sae.pretrained(teaching_model)


def test_a_small_ioi_feature_circuit_is_faithful(teaching_model, saes):
    task = iw.tasks.ioi(teaching_model, n=8, seed=5)
    effects = node_effects(teaching_model, saes, task.clean_tokens, task.corrupt_tokens, task.metric,
                           method="atp", progress=False)
    n, score = size_at_faithfulness(teaching_model, saes, task, effects, 0.8, progress=False)
    assert n is not None and n < 0.05 * effects.n_nodes  # a few percent of the nodes carry the task
    circuit = feature_circuit(teaching_model, saes, task, effects=effects, node_threshold=0.0, top_n=n,
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
