"""Sparse feature circuits on the random teaching model with random SAEs: exact identities of node and
edge effects, faithfulness end points, integrated gradients' convergence and agreement with the patching
engine, sites named in the place grammar, and bad input."""

from __future__ import annotations

import re

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits import passes
from interpwidgets.circuits.edges import METRIC, NodeRef, edge_effects
from interpwidgets.circuits.effects import node_effects
from interpwidgets.circuits.faithfulness import faithfulness, faithfulness_curve, size_at_faithfulness
from interpwidgets.circuits.feature_circuit import feature_circuit
from interpwidgets.interventions.components import parse_component
from interpwidgets.sae import SAEConfig, build_sae
from interpwidgets.sae.sets import SAESet
from interpwidgets.tasks.base import Task


def random_saes(model, d_sae: int, kinds=("resid", "attn", "mlp")) -> SAESet:
    hooks = {"resid": "hook_resid_post", "attn": "hook_attn_out", "mlp": "hook_mlp_out"}
    saes = SAESet()
    for layer in range(model.cfg.n_layers):
        for i, kind in enumerate(kinds):
            hook = f"blocks.{layer}.{hooks[kind]}"
            saes[hook] = build_sae(SAEConfig(d_in=model.cfg.d_model, d_sae=d_sae, hook_name=hook), seed=10 * layer + i)
    return saes


@pytest.fixture(scope="module")
def saes(random_model):
    return random_saes(random_model, 32)


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=3, seed=0)


@pytest.fixture(scope="module")
def atp(random_model, saes, task):
    return node_effects(random_model, saes, task.clean_tokens, task.corrupt_tokens, task.metric, method="atp", progress=False)


def test_atp_node_effects_of_a_site_sum_to_the_sites_attribution_patching(atp):
    # x = decode(f) + err, so sum over features and error of grad.delta = grad . (x_patch - x_clean)
    for site in atp.sites:
        whole = (atp.grads[site.name] * (atp.x_patch[site.name] - atp.x_clean[site.name])).sum()
        assert atp.effects[site.name].sum().item() == pytest.approx(whole.item(), abs=1e-5)


def test_atp_effect_of_one_feature_is_its_gradient_times_its_change(atp):
    site = atp.site("attn1")
    (fc, _), (fp, _) = atp.clean_nodes("attn1"), atp.patch_nodes("attn1")
    pos, j = 5, int((fp - fc)[:, 5].abs().sum(0).argmax())
    by_hand = ((atp.grads["attn1"][:, pos] @ site.sae.W_dec[j]) * (fp - fc)[:, pos, j]).sum()
    assert atp.effects["attn1"][pos, j].item() == pytest.approx(by_hand.item(), rel=1e-5, abs=1e-7)
    assert by_hand.abs().item() > 0


def test_ig_of_a_residual_site_converges_to_the_total_patching_effect(random_model, saes, task):
    # resid L is a bottleneck: patching all of it gives the corrupt run's metric from there on
    total = passes.metric_value(random_model, task.corrupt_tokens, task.metric) - passes.metric_value(random_model, task.clean_tokens, task.metric)
    # the quadrature error of IG shrinks with the steps: check it does and is small at 64 steps
    errors = {}
    for steps in (4, 16, 64):
        ig = node_effects(random_model, saes, task.clean_tokens, task.corrupt_tokens, task.metric, method="ig",
                          steps=steps, kinds=("resid_post",), progress=False)
        errors[steps] = abs(ig.effects["resid_post1"].sum().item() - total)
    assert errors[64] < errors[16] < errors[4]
    assert errors[64] < 0.05 * abs(total)


def test_ig_with_many_steps_approaches_exact_patching_of_a_single_node(random_model, saes, task):
    # change one token: at the embedding site only the node at that position differs
    pos = 4
    corrupt = task.clean_tokens.clone()
    corrupt[:, pos] = (task.clean_tokens[:, pos] + 7) % random_model.cfg.d_vocab
    t = Task("one-token", task.clean_tokens, corrupt, task.answer_tokens, task.wrong_tokens)
    ig = node_effects(random_model, saes, t.clean_tokens, t.corrupt_tokens, t.metric, method="ig", steps=24,
                      kinds=("resid",), progress=False)
    atp = node_effects(random_model, saes, t.clean_tokens, t.corrupt_tokens, t.metric, method="atp",
                       kinds=("resid",), progress=False)
    patched = ig.x_clean["resid_pre0"].clone()
    patched[:, pos] = ig.x_patch["resid_pre0"][:, pos]
    hooks = [("blocks.0.hook_resid_pre", lambda x, hook: patched)]
    exact = passes.metric_value(random_model, t.clean_tokens, t.metric, hooks) - ig.metric_clean
    assert ig.effects["resid_pre0"][pos, -1].item() == pytest.approx(exact, rel=0.03, abs=1e-4)
    assert abs(ig.effects["resid_pre0"][pos, -1].item() - exact) < abs(atp.effects["resid_pre0"][pos, -1].item() - exact)
    assert ig.effects["resid_pre0"][:pos].abs().max().item() == 0.0


@pytest.mark.parametrize("steps", [1, 3])
def test_ig_of_a_whole_site_equals_the_patching_engines_ig_of_that_hook(random_model, saes, task, steps):
    """The two integrated-gradients estimators are one: summed over a site's features, error and positions,
    circuits' IG is `iw.patching.attribution_patch(method="ig")` of the hook (same metric, same steps), which
    patches the corrupt activation into the clean run as node effects do. Few steps make any difference in the
    quadrature rule show."""
    ig = node_effects(random_model, saes, task.clean_tokens, task.corrupt_tokens, task.metric, method="ig",
                      steps=steps, kinds=("resid_post",), progress=False)
    patched = iw.patching.attribution_patch(random_model, task, site="resid_post", by="layer", method="ig", steps=steps,
                                            patch_into="clean", normalize=False, progress=False)
    for layer in range(random_model.cfg.n_layers):
        estimate = float(patched.values[layer]) - ig.metric_clean
        assert ig.effects[f"resid_post{layer}"].sum().item() == pytest.approx(estimate, rel=1e-4, abs=1e-6)


def test_site_names_are_places_that_parse_to_the_hook_their_sae_reads(atp, random_model):
    assert [s.name for s in atp.sites[:4]] == ["resid_pre0", "attn0", "mlp0", "resid_post0"]
    assert parse_component(atp.sites[0].name).hook_name == "blocks.0.hook_resid_pre"
    for site in atp.sites[1:]:
        assert parse_component(site.name, random_model).hook_name == site.sae.cfg.hook_name


def test_resid_is_read_as_resid_post_in_kinds(random_model, saes, task):
    effects = node_effects(random_model, saes, task.clean_tokens, None, task.metric, method="atp", kinds=("resid",),
                           progress=False)
    assert [s.name for s in effects.sites] == ["resid_pre0"] + [f"resid_post{layer}" for layer in range(4)]
    assert effects.kinds == ("resid_post",)
    with pytest.raises(ValueError, match="subset of"):
        node_effects(random_model, saes, task.clean_tokens, None, task.metric, method="atp", kinds=("neurons",))


def test_faithfulness_is_one_for_all_nodes_and_zero_for_none(random_model, saes, task, atp):
    total = atp.n_nodes
    curve = faithfulness_curve(random_model, saes, task, atp, sizes=[0, total], progress=False)
    assert curve.faithfulness[0] == pytest.approx(0.0, abs=1e-6)
    assert curve.faithfulness[1] == pytest.approx(1.0, abs=1e-4)
    assert curve.completeness[0] == pytest.approx(1.0, abs=1e-4)
    assert curve.completeness[1] == pytest.approx(0.0, abs=1e-6)
    assert curve.size_at(0.8) == total


def test_circuit_of_the_top_n_nodes_has_the_curves_faithfulness_at_n(random_model, saes, task, atp):
    c = feature_circuit(random_model, saes, task, node_threshold=0.0, top_n=25, edges=False, effects=atp, progress=False)
    assert len(c) == 25 and c.method == "atp" and set(c.kinds) == {"resid_post", "attn", "mlp"}
    ranked = sorted((abs(e) for e in torch.cat([v.flatten() for v in atp.effects.values()]).tolist()), reverse=True)
    assert min(abs(n.effect) for n in c.nodes if n.kind != "metric") == pytest.approx(ranked[24])
    r = faithfulness(random_model, saes, task, c)
    curve = faithfulness_curve(random_model, saes, task, c, sizes=[25], progress=False)
    assert r.faithfulness == pytest.approx(curve.faithfulness[0], abs=1e-5)
    assert r.completeness == pytest.approx(curve.completeness[0], abs=1e-5)
    assert r.n_nodes == 25


def test_summed_circuit_round_trips_through_json_and_keeps_its_faithfulness(random_model, saes, task):
    c = feature_circuit(random_model, saes, task, method="atp", aggregation="sum", node_threshold=0.05,
                        edges=False, progress=False)
    back = iw.circuits.Circuit.from_json(c.to_json())
    assert all(n.position is None for n in back.nodes)
    a = faithfulness(random_model, saes, task, c)
    b = faithfulness(random_model, saes, task, back)
    assert a.faithfulness == pytest.approx(b.faithfulness, abs=1e-6)
    assert a.n_nodes == len(c)  # a summed node counts once, not once per position it covers


def test_size_at_faithfulness_of_summed_nodes_counts_nodes_not_positions(random_model, saes, task, atp):
    r = size_at_faithfulness(random_model, saes, task, atp, level=0.5, aggregation="sum", progress=False)
    total = sum(e.shape[-1] for e in atp.effects.values())  # one summed node per column of each site
    assert r.faithfulness >= 0.5 and r.n_nodes <= total
    curve = faithfulness_curve(random_model, saes, task, atp, sizes=[r.n_nodes], aggregation="sum", progress=False)
    assert curve.faithfulness[0] == pytest.approx(r.faithfulness, abs=1e-6)


@pytest.fixture(scope="module")
def small(random_model):
    return random_saes(random_model, 4)


def test_edges_join_only_successive_components(random_model, small, task):
    c = feature_circuit(random_model, small, task, method="atp", aggregation="sum", node_threshold=0.0,
                        edge_threshold=0.0, progress=False)
    n_layers = random_model.cfg.n_layers
    place = {n.id: n.place for n in c.nodes}
    allowed = {("resid_pre0", "attn0"), ("resid_pre0", "mlp0"), ("resid_pre0", "resid_post0"), (f"resid_post{n_layers - 1}", "metric")}
    for layer in range(n_layers):
        allowed |= {(f"attn{layer}", f"mlp{layer}"), (f"attn{layer}", f"resid_post{layer}"), (f"mlp{layer}", f"resid_post{layer}")}
        if layer:
            allowed |= {(f"resid_post{layer - 1}", f"{k}{layer}") for k in ("attn", "mlp", "resid_post")}
    pairs = {(place[e.src], place[e.dst]) for e in c.edges}
    assert pairs == allowed


def test_resid_to_resid_edge_matches_the_hand_computed_direct_path(random_model, small, task, ):
    eff = node_effects(random_model, small, task.clean_tokens, task.corrupt_tokens, task.metric, method="atp", progress=False)
    pos = 6
    f0_clean, _ = eff.clean_nodes("resid_post0")
    i = int(eff.deltas("resid_post0")[0][:, pos].abs().sum(0).argmax())
    f1, _ = eff.clean_nodes("resid_post1")
    j = int((f1[:, pos] > 0).sum(0).argmax())
    up, down = NodeRef("resid_post0", i, pos), NodeRef("resid_post1", j, pos)
    w = edge_effects(random_model, eff, [up, down], task.clean_tokens, task.metric, progress=False)[(up, down)]
    s0, s1 = eff.site("resid_post0").sae, eff.site("resid_post1").sae
    # d f1_j / d f0_i along the residual connection = [f1_j active] * W_dec0[i] . W_enc1[:, j]
    g_fj = eff.grads["resid_post1"][:, pos] @ s1.W_dec[j]
    by_hand = (g_fj * (f1[:, pos, j] > 0) * (s0.W_dec[i] @ s1.W_enc[:, j]) * eff.deltas("resid_post0")[0][:, pos, i]).sum()
    assert by_hand.abs().item() > 0
    assert w == pytest.approx(by_hand.item(), rel=1e-4, abs=1e-7)


def test_edges_into_the_metric_equal_the_last_residual_nodes_atp_effects(random_model, small, task):
    eff = node_effects(random_model, small, task.clean_tokens, task.corrupt_tokens, task.metric, method="atp", progress=False)
    last = f"resid_post{random_model.cfg.n_layers - 1}"
    refs = [NodeRef(last, col, pos) for pos in (5, task.clean_tokens.shape[1] - 1) for col in range(5)]
    w = edge_effects(random_model, eff, refs, task.clean_tokens, task.metric, progress=False)
    for r in refs:
        assert w[(r, METRIC)] == pytest.approx(eff.effects[last][r.position, r.column].item(), rel=1e-4, abs=1e-7)


def test_feature_circuit_nodes_and_edges_are_labelled_for_drawing(random_model, saes, task):
    c = feature_circuit(random_model, saes, task, method="ig", steps=2, node_threshold=0.03, edge_threshold=0.001,
                        progress=False)
    assert c.method == "ig" and c.metadata["task"] == "ioi"
    assert len(c.edges) > 0 and "metric" in c
    node = c.top(1)[0]
    assert node.label.startswith(node.place) and f"@{node.position}" in node.label
    for n in c.nodes:
        assert n.dictionary == (None if n.kind in ("resid_pre", "metric") else parse_component(n.place).hook_name)
    assert c.node("metric").effect == pytest.approx(c.metadata["metric_patch"] - c.metadata["metric_clean"])


def test_missing_sae_is_named_in_a_clear_error(random_model, saes, task):
    partial = SAESet({k: v for k, v in saes.items() if k != "blocks.2.hook_mlp_out"})
    with pytest.raises(ValueError, match=r"missing: \['blocks.2.hook_mlp_out'\]"):
        feature_circuit(random_model, partial, task, progress=False)
    # leaving the kind out is allowed
    c = feature_circuit(random_model, partial, task, kinds=("resid", "attn"), method="atp", edges=False, progress=False)
    assert {n.kind for n in c.nodes} <= {"resid_post", "attn", "resid_pre", "metric"} and c.kinds == ("attn", "resid_post")


def test_explicit_arguments_that_disagree_with_the_given_effects_are_refused(random_model, saes, task, atp):
    """feature_circuit(effects=...) used to replace method, kinds and the patch silently by the effects' own."""
    for given, named in ((dict(method="ig"), "method='ig'"), (dict(kinds=("resid",)), "kinds=('resid_post',)"),
                         (dict(ablation="zero"), "ablation='zero'")):
        with pytest.raises(ValueError, match=re.escape(named)):
            feature_circuit(random_model, saes, task, effects=atp, edges=False, progress=False, **given)
    same = feature_circuit(random_model, saes, task, effects=atp, method="atp", kinds=("mlp", "resid", "attn"),
                           ablation="resample", steps=3, edges=False, progress=False)
    assert same.method == "atp" and same.metadata["ablation"] == "resample"


def test_non_differentiable_metric_is_rejected_clearly(random_model, saes, task):
    def accuracy(logits):
        return (logits[:, -1].argmax(-1) == task.answer_tokens).float().mean()

    with pytest.raises(ValueError, match="not differentiable"):
        feature_circuit(random_model, saes, task, metric=accuracy, progress=False)
    with pytest.raises(ValueError, match="one number"):
        feature_circuit(random_model, saes, task, metric=lambda logits: task.metric(logits, reduce=False), progress=False)


def test_thresholds_that_select_nothing_give_an_empty_circuit_with_a_message(random_model, saes, task):
    c = feature_circuit(random_model, saes, task, method="atp", node_threshold=1e6, progress=False)
    assert c.is_empty and c.edges == []
    assert "node_threshold=1000000.0" in c.message and "largest" in c.message
    with pytest.raises(ValueError, match="non-negative"):
        feature_circuit(random_model, saes, task, node_threshold=-1, progress=False)
    with pytest.raises(ValueError, match="method"):
        feature_circuit(random_model, saes, task, method="exact", progress=False)


def test_head_contributions_to_an_attention_feature_sum_to_its_pre_activation(random_model, saes, task):
    from interpwidgets.circuits.heads import attention_feature_heads

    sae = saes["blocks.1.hook_attn_out"]
    _, cache = random_model.run_with_cache(task.clean_tokens, names_filter=["blocks.1.hook_attn_out"])
    pre = sae.encode_pre(cache["blocks.1.hook_attn_out"])  # [batch, seq, d_sae]
    pos, j = 7, int(pre[:, 7].mean(0).argmax())
    heads = attention_feature_heads(random_model, sae, task.clean_tokens, j, pos)
    constant = (random_model.blocks[1].attn.b_O - sae.b_dec) @ sae.W_enc[:, j] + sae.b_enc[j]
    assert heads.shape == (random_model.cfg.n_heads,)
    assert (heads.sum() + constant).item() == pytest.approx(pre[:, pos, j].mean().item(), abs=1e-4)
    both = attention_feature_heads(random_model, sae, task.clean_tokens, [j, 3], [pos, None])
    assert both.shape == (2, random_model.cfg.n_heads) and torch.allclose(both[0], heads, atol=1e-5)
    with pytest.raises(ValueError, match="hook_attn_out"):
        attention_feature_heads(random_model, saes["blocks.1.hook_resid_post"], task.clean_tokens, 0)


def test_size_at_faithfulness_is_the_smallest_top_n_reaching_the_level(random_model, saes, task, atp):
    r = size_at_faithfulness(random_model, saes, task, atp, level=0.5, progress=False)
    assert r.faithfulness >= 0.5
    below = faithfulness_curve(random_model, saes, task, atp, sizes=[r.n_nodes - 1], progress=False)
    assert below.faithfulness[0] < 0.5
