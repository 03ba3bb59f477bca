"""Copy as code: every widget action records the Python call that reproduces it, and running that code gives the
numbers the widget sent (the reply), for PatchHeatmap, TokenFeatures, Steering, CircuitGraph, AttentionPatterns,
FeatureDashboard and Explorer; names come from the notebook's namespace; the history is capped; failed requests
record nothing; `code()` is one valid cell."""

from __future__ import annotations

import ast
import sys
import types

import numpy as np
import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits import Circuit, Edge, Node
from interpwidgets.sae import SAEConfig, SAESet, build_sae, feature_stats
from interpwidgets.widgets import (
    AttentionPatterns, CircuitGraph, Explorer, FeatureDashboard, PatchHeatmap, Steering, TokenFeatures,
)
from interpwidgets.widgets.history import HISTORY_LIMIT, literal
from interpwidgets.widgets.testing import ask, decode_array

PROMPT = "When Mary and John went to the store, John gave a drink to"
RESID0, RESID1, RESID2 = (f"blocks.{layer}.hook_resid_post" for layer in range(3))
FLOAT16 = {"rtol": 2e-3, "atol": 1e-3}


def run(code: str, namespace: dict):
    """Executes `code` in `namespace` as a notebook cell would; returns the value of a final expression (or None)."""
    namespace.setdefault("iw", iw)  # the notebook's `import interpwidgets as iw` (a step's code is only the call)
    tree = ast.parse(code)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<recorded>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<recorded>", "eval"), namespace) if last else None


def acted(widget, method: str, **params) -> dict:
    ok, reply = ask(widget, method, **params)
    assert ok, reply
    assert reply["code"] == widget.history[-1].snippet
    return reply


@pytest.fixture(scope="module")
def saes():
    make = lambda hook, d_sae, seed: build_sae(  # noqa: E731
        SAEConfig(d_in=128, d_sae=d_sae, architecture="topk", k=4, hook_name=hook), seed=seed)
    return SAESet.of([make(RESID0, 64, 0), make(RESID1, 48, 1), make(RESID2, 32, 2)])


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=4, seed=0)


@pytest.fixture(scope="module")
def patching(random_model, task):
    return iw.patching.activation_patch(random_model, task, site="z", normalize=False, progress=False)


# ---- every action, reproduced by running its code
@pytest.mark.parametrize("action", ["zero", "mean", "patch"])
def test_patch_heatmap_code_reproduces_the_metric_shown(patching, action):
    widget = PatchHeatmap(patching, action=action)
    reply = acted(widget, "intervene", cells=[[1, 2], [3, 0]])
    step = widget.history[-1]
    expected = {"zero": "'zero'", "mean": "'mean'", "patch": "None"}[action]
    assert step.code == f"result.intervene([(1, 2), (3, 0)], ablation={expected})"
    outcome = run(widget.code(), {"result": patching})
    assert float(outcome.metric_after) == reply["metric_after"] == step.shown["metric_after"]
    assert float(outcome.metric_before) == reply["metric_before"]


@pytest.mark.parametrize("action", ["ablate", "steer"])
def test_token_features_intervention_code_reproduces_the_predictions_shown(random_model, saes, action):
    widget = TokenFeatures(random_model, saes, PROMPT, hook=RESID1, feature=5, action=action, alpha=3.5)
    reply = acted(widget, "intervene", position=6)
    namespace = {"result": widget.result, "model": random_model, "saes": widget.saes}
    top = run(widget.history[-1].code, namespace)
    assert ("iw.sae.ablate_features" if action == "ablate" else "iw.sae.steer_feature") in widget.history[-1].code
    np.testing.assert_allclose(top.values.detach().numpy(), widget.history[-1].shown["after"], rtol=0, atol=0)
    np.testing.assert_allclose(top.values.detach().numpy(), decode_array(reply["after"]["probs"]), **FLOAT16)
    # and the engine call by hand, to be sure the code is not just self-consistent
    sae = saes[RESID1]
    edit = (iw.sae.ablate_features(random_model, sae, [5]) if action == "ablate"
            else iw.sae.steer_feature(random_model, sae, 5, 3.5))
    with torch.no_grad():
        by_hand = edit.run(widget.result.tokens[None])[0, 6].softmax(-1).topk(widget.top_k).values
    np.testing.assert_allclose(top.values.detach().numpy(), by_hand.numpy(), rtol=1e-6, atol=1e-7)


def test_token_features_picks_record_the_activations_and_the_token_list(random_model, saes):
    widget = TokenFeatures(random_model, saes, PROMPT, hook=RESID0, feature=11)
    shown = decode_array(acted(widget, "activations")["values"])
    values = run(widget.history[-1].code, {"result": widget.result})
    np.testing.assert_allclose(values.numpy(), shown, **FLOAT16)
    token = acted(widget, "token", position=4)
    top = run(widget.history[-1].code, {"result": widget.result})
    active = top.values[top.values > 0]
    np.testing.assert_allclose(active.numpy(), decode_array(token["values"]), **FLOAT16)
    assert [s.code for s in widget.history] == ["result['blocks.0.hook_resid_post'][:, 11]",
                                                "result['blocks.0.hook_resid_post'][4].topk(12)"]


def test_steering_code_reproduces_both_continuations(random_model, saes):
    vector = torch.randn(128, generator=torch.Generator().manual_seed(0))
    widget = Steering(random_model, saes, PROMPT, features=[(RESID1, 3)], directions={"mine": (RESID2, vector)},
                      max_new_tokens=5)
    widget.set_state({"scales": [widget.rows[0]["limit"] / 2, -widget.rows[1]["limit"] / 3],
                      "sampling": "sample", "temperature": 1.5, "seed": 7})
    reply = acted(widget, "generate")
    step = widget.history[-1]
    assert "iw.interventions.combine(" in step.code and "seed=7" in step.code and "temperature=1.5" in step.code
    namespace = {"model": random_model, "saes": widget.saes, "vector": widget.directions[1].vector, "iw": iw}
    run(step.code, namespace)
    assert namespace["steered"] == step.shown["steered"] and namespace["baseline"] == step.shown["baseline"]
    assert iw.models.tokens.token_strings(random_model, namespace["steered"]) == reply["steered"]
    assert namespace["steered"] != namespace["baseline"]  # the steering changed the text, so the check has teeth


def test_steering_with_all_scales_zero_records_the_baseline_only(random_model, saes):
    widget = Steering(random_model, saes, [1, 2, 3, 4], features=[(RESID1, 3)], max_new_tokens=3)
    acted(widget, "generate")
    code = widget.history[-1].code
    assert "tokens = [1, 2, 3, 4]" in code and code.endswith("steered = baseline")
    namespace = {"model": random_model}
    run(code, namespace)
    assert namespace["steered"] == widget.history[-1].shown["steered"]


@pytest.fixture(scope="module")
def circuit() -> Circuit:
    nodes = [
        Node("resid_post1/5@3", 1, "resid_post", 5, 3, "resid_post1 #5 @3", 0.8, dictionary=RESID1),
        Node("resid_post2/7@4", 2, "resid_post", 7, 4, "resid_post2 #7 @4", -0.4, dictionary=RESID2),
        Node("metric", 4, "metric", label="ioi", effect=-1.0),
    ]
    edges = [Edge("resid_post1/5@3", "resid_post2/7@4", 0.3), Edge("resid_post2/7@4", "metric", -0.6)]
    return Circuit(nodes, edges, {"task": "ioi", "n_layers": 4}, method="atp", kinds=("resid_post",))


@pytest.mark.parametrize("ablation", ["mean", "zero"])
def test_circuit_graph_ablation_code_reproduces_the_metric_shown(random_model, saes, task, circuit, ablation):
    widget = CircuitGraph(circuit, model=random_model, saes=saes, task=task, ablation=ablation)
    reply = acted(widget, "ablate", node="resid_post2/7@4")
    code = widget.history[-1].code
    assert code == ("iw.circuits.ablate_nodes(model, saes, task, [circuit.node('resid_post2/7@4')], "
                    f"ablation={ablation!r})")
    result = run(code, {"model": random_model, "saes": saes, "task": task, "circuit": widget.circuit, "iw": iw})
    assert result.metric_ablated == reply["metric_after"] and result.metric_clean == reply["metric_before"]


def test_circuit_graph_open_code_opens_the_feature_in_the_dashboard(random_model, saes, circuit):
    dashboard = FeatureDashboard(random_model, saes, corpus=torch.zeros(2, 4, dtype=torch.long))
    widget = CircuitGraph(circuit, dashboard=dashboard)
    acted(widget, "open", node="resid_post1/5@3")
    dashboard.show(0, RESID0)
    run(widget.history[-1].code, {"dashboard": dashboard})
    assert (dashboard.hook, dashboard.feature) == (RESID1, 5)


@pytest.mark.parametrize("weighting", ["attention", "value"])
def test_attention_code_reproduces_the_pattern_shown(random_model, weighting):
    result = iw.lens.attention_patterns(random_model, PROMPT)
    widget = AttentionPatterns(result)
    widget.set_state({"layer": 2, "head": 3, "weighting": weighting})
    reply = acted(widget, "pattern")
    assert widget.history[-1].code == f"result.pattern(2, 3, weighting={weighting!r})"
    pattern = run(widget.history[-1].code, {"result": result})
    rows, cols = torch.tril_indices(result.n_tokens, result.n_tokens)
    shown = decode_array(reply["pattern"])  # uint8: steps of domain_max / 255
    np.testing.assert_allclose(pattern[rows, cols].numpy(), shown, atol=reply["domain_max"] / 255 + 1e-6)


def test_dashboard_code_reproduces_the_examples_and_logit_effects_shown(random_model, saes):
    corpus = torch.randint(1, 700, (6, 16), generator=torch.Generator().manual_seed(0))
    stats = feature_stats(random_model, saes[RESID1], corpus, progress=False)
    widget = FeatureDashboard(random_model, saes, hook=RESID1, feature=4, stats=[stats], corpus=corpus)
    reply = acted(widget, "feature")
    step = widget.history[-1]
    namespace = {"stats": stats, "model": random_model, "saes": widget.saes, "iw": iw}
    run(step.code, namespace)
    assert [e.activation for e in namespace["examples"]] == step.shown["activations"]
    examples = decode_array(reply["examples"]["values"])
    peaks = [row[e.focus] for row, e in zip(examples, namespace["examples"])]
    np.testing.assert_allclose(peaks, step.shown["activations"], **FLOAT16)
    np.testing.assert_allclose([v for _, v in namespace["effects"].top], decode_array(reply["logits"]["top"]["values"]), **FLOAT16)


def test_dashboard_stats_it_computed_get_a_default_name_explained_in_the_header(random_model, saes):
    corpus = torch.randint(1, 700, (4, 12), generator=torch.Generator().manual_seed(1))
    widget = FeatureDashboard(random_model, saes[RESID2], feature=3, corpus=corpus)
    acted(widget, "feature")
    cell = widget.code()
    assert f"# stats = the FeatureStats of {RESID2} this widget shows (widget.stats({RESID2!r}))" in cell
    assert "# sae = the SAE reading blocks.2.hook_resid_post (widget.saes['blocks.2.hook_resid_post'])" in cell
    namespace = {"stats": widget.stats(), "sae": saes[RESID2], "model": random_model}
    run(cell, namespace)
    assert [e.activation for e in namespace["examples"]] == widget.history[-1].shown["activations"]


def test_explorer_parts_share_default_names_and_one_cell(random_model, saes):
    explorer = Explorer(random_model, saes, PROMPT, hook=RESID0, corpus=torch.randint(1, 700, (4, 12)))
    acted(explorer.token_features, "intervene", position=3)
    acted(explorer.attention, "pattern")
    cell = explorer.code()
    compile(cell, "<cell>", "exec")
    assert "# result = the FeatureActivations this widget shows (explorer.token_features.result)" in cell
    assert "# result_2 = the AttentionResult this widget shows (explorer.attention.result)" in cell
    assert [s.action for s in explorer.history][-1] == "show L0H0 (attention)"
    namespace = {"result": explorer.token_features.result, "result_2": explorer.attention.result,
                 "model": random_model, "saes": explorer.token_features.saes}
    run(cell, namespace)
    np.testing.assert_allclose(namespace["logits"].softmax(-1).topk(10).values.detach().numpy(),
                               explorer.token_features.history[-1].shown["after"], rtol=0, atol=0)


# ---- names, the cap, failures, the cell
@pytest.fixture
def user_ns(monkeypatch):
    """A fake IPython whose user namespace the test fills."""
    namespace: dict = {}
    shell = types.SimpleNamespace(user_ns=namespace)
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", fake)
    return namespace


def test_names_come_from_the_notebook_namespace_by_identity(patching, user_ns):
    user_ns.update({"_": patching, "_7": patching, "r": patching, "iw": iw})
    widget = PatchHeatmap(patching)
    acted(widget, "intervene", cells=[[0, 0]])
    assert widget.history[-1].code == "r.intervene([(0, 0)], ablation='zero')"
    assert widget.history[-1].snippet == widget.history[-1].code  # nothing assumed, iw is bound
    assert "# names" not in widget.code()


def test_an_unnamed_object_is_reached_through_the_named_widget(random_model, saes, user_ns):
    widget = TokenFeatures(random_model, saes, PROMPT, hook=RESID1, feature=2)
    user_ns.update({"tf": widget, "m": random_model})
    acted(widget, "intervene", position=2)
    code = widget.history[-1].code
    assert code.startswith("logits = iw.sae.ablate_features(m, tf.saes['blocks.1.hook_resid_post'], [2]).run(tf.result.tokens")
    assert widget.history[-1].snippet.startswith("import interpwidgets as iw\n")  # iw is not bound in this notebook
    run(widget.code(), {"tf": widget, "m": random_model})


def test_an_object_without_any_name_gets_a_default_explained_in_the_header(patching):
    widget = PatchHeatmap(patching)
    acted(widget, "intervene", cells=[[2, 1]])
    assert widget.history[-1].snippet.splitlines()[0] == "# result = the PatchResult this widget shows (widget.result)"
    assert widget.code().splitlines()[:2] == [
        "# names this code assumes (not bound in the notebook when it was recorded):",
        "# result = the PatchResult this widget shows (widget.result)",
    ]


def test_code_is_one_valid_cell_with_a_comment_per_action(random_model, saes, task, circuit):
    widget = CircuitGraph(circuit, model=random_model, saes=saes, task=task)
    for node in ("resid_post1/5@3", "resid_post2/7@4"):
        acted(widget, "ablate", node=node)
    cell = widget.code()
    compile(cell, "<cell>", "exec")
    assert "import interpwidgets as iw" in cell.splitlines()
    assert "# mean-ablate resid_post1 #5 @3\n" in cell and "# mean-ablate resid_post2 #7 @4\n" in cell
    assert [s.action for s in widget.history] == ["mean-ablate resid_post1 #5 @3", "mean-ablate resid_post2 #7 @4"]


def test_a_failed_request_records_nothing(patching, random_model, saes, task, circuit):
    widget = PatchHeatmap(patching)
    assert not ask(widget, "intervene", cells=[[9, 9]])[0]
    assert not ask(widget, "intervene", cells="all")[0]
    graph = CircuitGraph(circuit, model=random_model, saes=saes, task=task)
    assert not ask(graph, "ablate", node="metric")[0]
    assert widget.history == [] and graph.history == [] and widget.code() == "# no actions recorded yet"


def test_the_same_action_twice_is_one_step_and_the_history_is_capped(patching):
    widget = PatchHeatmap(patching)
    acted(widget, "intervene", cells=[[0, 1]])
    acted(widget, "intervene", cells=[[0, 1]])
    assert len(widget.history) == 1
    for i in range(HISTORY_LIMIT + 5):
        widget.record(f"step {i}", "print({i})", {}, i=i)
    assert len(widget.history) == HISTORY_LIMIT
    assert widget.history[0].action == "step 5" and widget.history[-1].code == f"print({HISTORY_LIMIT + 4})"


def test_literals_are_plain_data_and_objects_are_never_their_repr(patching):
    assert literal([(1, 2), (3,)]) == "[(1, 2), (3,)]" and literal({"a": [0.5, None]}) == "{'a': [0.5, None]}"
    assert literal(np.int64(3)) == "3" and literal(float("inf")) == "float('inf')"
    with pytest.raises(TypeError):
        literal(torch.zeros(2))
    widget = PatchHeatmap(patching)
    step = widget.record("scale", "{x} * 2", {}, x=torch.zeros(3))
    assert step.code == "x * 2" and "tensor" not in step.snippet
    with pytest.raises(ValueError, match="slots without values"):
        widget.record("bad", "{missing}", {})
