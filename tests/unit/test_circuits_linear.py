"""Linear computation graphs on the random teaching model with random transcoders: the replacement
model reproduces the model, contributions sum exactly to their target, hierarchical attribution
conserves it, and the QK split sums to the attention score."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits.hierarchical import hierarchical_attribution
from interpwidgets.circuits.linear_graph import FeatureTarget, LogitTarget, linear_graph
from interpwidgets.circuits.qk import qk_attribution
from interpwidgets.interventions.components import parse_node
from interpwidgets.sae import SAEConfig, build_sae
from interpwidgets.sae.sets import SAESet

EXACT = 1e-4


def dictionaries(model, architecture: str = "relu", attn: bool = True) -> SAESet:
    """Random transcoders for every MLP (and attention-output SAEs), with nonzero biases."""
    saes = SAESet()
    gen = torch.Generator().manual_seed(0)
    d = model.cfg.d_model
    for layer in range(model.cfg.n_layers):
        extra = {"k": 8} if architecture == "topk" else {}
        cfgs = [SAEConfig(d_in=d, d_sae=48, architecture=architecture, hook_name=f"blocks.{layer}.ln2.hook_normalized",
                          hook_name_out=f"blocks.{layer}.hook_mlp_out", **extra)]
        if attn:
            cfgs.append(SAEConfig(d_in=d, d_sae=32, architecture=architecture, hook_name=f"blocks.{layer}.hook_attn_out", **extra))
        for cfg in cfgs:
            sae = build_sae(cfg, seed=layer)
            with torch.no_grad():
                sae.b_enc.copy_(0.1 * torch.randn(cfg.d_sae, generator=gen))
                sae.b_dec.copy_(0.1 * torch.randn(cfg.d_out, generator=gen))
            saes[cfg.hook_name] = sae
    return saes


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=1, seed=0)


@pytest.fixture(scope="module")
def graph(random_model, task):
    return linear_graph(random_model, dictionaries(random_model), task.clean_tokens[0])


def logit_target(task) -> LogitTarget:
    return LogitTarget(int(task.answer_tokens[0]), int(task.wrong_tokens[0]))


def test_replacement_model_reproduces_the_models_logits(graph):
    assert torch.allclose(graph.logits, graph.logits_clean, atol=1e-4)


def test_logit_difference_contributions_sum_to_the_target(graph, task):
    a = graph.attribute(logit_target(task))
    assert a.value == pytest.approx(float(task.metric(graph.logits_clean)), abs=EXACT)
    assert abs(a.remainder) < EXACT
    kinds = {n.kind for n in a.nodes}
    assert {"embed", "pos_embed", "mlp", "attn"} <= kinds and any(n.feature == "bias" for n in a.nodes)


def test_nodes_name_their_dictionary_and_parse_to_the_hook_their_value_lives_at(graph, task):
    """Transcoder nodes name the transcoder (its input hook), attention-SAE nodes the SAE; ids are places."""
    places = {"embed": "hook_embed", "pos_embed": "hook_pos_embed", "mlp": "blocks.{}.hook_mlp_out",
              "attn": "blocks.{}.hook_attn_out"}
    dictionaries = {"mlp": "blocks.{}.ln2.hook_normalized", "attn": "blocks.{}.hook_attn_out"}
    for n in graph.attribute(logit_target(task)).nodes:
        if n.feature == "bias":
            assert n.dictionary is None
            continue
        place, unit = parse_node(n.id)
        assert place.hook_name == places[n.kind].format(n.layer) and unit == n.feature
        assert n.dictionary == (dictionaries[n.kind].format(n.layer) if n.kind in dictionaries else None)


@pytest.mark.parametrize("kind,layer", [("mlp", 3), ("mlp", 1), ("attn", 2)])
def test_feature_pre_activation_contributions_sum_to_the_target(graph, kind, layer):
    target = graph.active_features(kind, layer=layer)[-1]
    a = graph.attribute(target)
    assert a.value == pytest.approx(graph.activation(target), abs=EXACT)  # active: activation == pre-activation
    assert abs(a.remainder) < EXACT
    # only inputs computed before the target contribute
    assert all(n.layer < layer or (n.layer == layer and kind == "mlp" and n.kind == "attn") or n.feature == "bias"
               for n in a.nodes if n.kind in ("mlp", "attn"))
    assert all(n.position is None or n.position <= target.position for n in a.nodes)


def test_exact_without_attention_saes_and_with_topk_transcoders(random_model, task):
    g = linear_graph(random_model, dictionaries(random_model, "topk", attn=False), task.clean_tokens[0])
    assert g.attn_saes == {}
    for target in (logit_target(task), g.active_features("mlp", layer=2)[0]):
        a = g.attribute(target)
        assert abs(a.remainder) < EXACT
    assert not any(n.kind == "attn" and n.is_feature for n in a.nodes)


def frozen_logit_diff(model, graph, task, embed_scale: float, freeze_scales: bool = True) -> float:
    """The replacement model's logit difference with the token embedding scaled, everything else as recorded."""
    hooks = [("hook_embed", lambda x, hook: embed_scale * graph.values["embed"])]
    hooks += [(name, lambda x, hook, v=v: v) for name, v in graph.frozen.items() if freeze_scales or "pattern" in name]
    for layer, tc in enumerate(graph.transcoders):
        out = tc.decode(graph.values[f"mlp{layer}"]) + graph.values[f"mlp{layer}/error"]
        hooks.append((f"blocks.{layer}.hook_mlp_out", lambda x, hook, out=out: out))
    for layer, sae in graph.attn_saes.items():
        out = sae.decode(graph.values[f"attn{layer}"]) + graph.values[f"attn{layer}/error"]
        hooks.append((f"blocks.{layer}.hook_attn_out", lambda x, hook, out=out: out))
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        return float(task.metric(model(task.clean_tokens)))


def test_the_frozen_model_is_linear_in_the_embedding(random_model, graph, task):
    # doubling the embedding adds exactly its contribution (linear, not just to first order) ...
    a = graph.attribute(logit_target(task))
    embed = sum(n.effect for n in a.nodes if n.kind == "embed")
    base = frozen_logit_diff(random_model, graph, task, 1.0)
    assert base == pytest.approx(a.value, abs=EXACT)
    assert frozen_logit_diff(random_model, graph, task, 2.0) - base == pytest.approx(embed, abs=1e-3)
    # ... which holds only with the LayerNorm scales frozen
    unfrozen = frozen_logit_diff(random_model, graph, task, 2.0, freeze_scales=False) - base
    assert abs(unfrozen - embed) > 1e-2


def test_hierarchical_attribution_conserves_the_target(graph, task):
    target = logit_target(task)
    c = hierarchical_attribution(graph, target, depth=3, threshold=0.02, progress=False)
    m = c.metadata
    assert c.method == "linear_graph" and c.kinds == ()
    assert m["unexpanded"] + m["dropped"] == pytest.approx(m["target_value"], abs=EXACT)
    assert c.node("metric").effect == pytest.approx(m["target_value"])
    # every edge points from an input computed earlier to the feature (or logit) it feeds
    stage = {"attn": 0, "mlp": 1}
    for e in c.edges:
        src, dst = c.node(e.src), c.node(e.dst)
        if dst.kind != "metric" and src.kind in stage and src.feature != "bias":
            assert (src.layer, stage[src.kind]) < (dst.layer, stage[dst.kind])
    # a node's effect is the sum of the flows it sends on
    out = {}
    for e in c.edges:
        out[e.src] = out.get(e.src, 0.0) + e.weight
    for nid, total in out.items():
        assert c.node(nid).effect == pytest.approx(total, abs=1e-6)


def test_depth_one_keeps_only_direct_contributors(graph, task):
    target = logit_target(task)
    c = hierarchical_attribution(graph, target, depth=1, threshold=0.0, progress=False)
    direct = graph.attribute(target)
    assert {n.id for n in c.nodes} == {n.id for n in direct.nodes} | {"metric"}
    assert all(e.dst == "metric" for e in c.edges)


def test_qk_pairs_sum_to_the_attention_score(graph):
    layer, head, q, k = 2, 1, -1, 3
    r = qk_attribution(graph, layer, head, q, k)
    assert float(r.pairs.sum()) == pytest.approx(r.score, abs=EXACT)
    assert sum(n.effect for n in r.query_nodes) == pytest.approx(r.score, abs=EXACT)
    # the score is the one the model used: softmax over keys reproduces the frozen pattern
    qv = graph.qk[f"q{layer}"][0, r.query_position, head]
    keys = graph.qk[f"k{layer}"][0, : r.query_position + 1, head]
    scores = (keys @ qv / graph.model.cfg.d_head**0.5).detach()
    assert scores[k].item() == pytest.approx(r.score, abs=1e-5)
    pattern = graph.frozen[f"blocks.{layer}.attn.hook_pattern"][0, head, r.query_position, : r.query_position + 1]
    assert torch.allclose(torch.softmax(scores, -1), pattern, atol=1e-5)
    assert len(r.top_pairs(3)) == 3


def test_bad_input_raises_clear_errors(random_model, graph, task):
    saes = dictionaries(random_model, attn=False)
    del saes["blocks.1.ln2.hook_normalized"]
    with pytest.raises(ValueError, match="blocks.1.ln2.hook_normalized"):
        linear_graph(random_model, saes, task.clean_tokens[0])
    with pytest.raises(ValueError, match=r"\[n\] or \[1, n\]"):
        linear_graph(random_model, dictionaries(random_model, attn=False), task.clean_tokens[:1].repeat(2, 1))
    with pytest.raises(ValueError, match="outside the prompt"):
        graph.attribute(FeatureTarget("mlp", 1, 0, 99))
    with pytest.raises(ValueError, match="outside the dictionary"):
        graph.attribute(FeatureTarget("mlp", 1, 999, 0))
    no_attn = linear_graph(random_model, dictionaries(random_model, attn=False), task.clean_tokens[0])
    with pytest.raises(ValueError, match="No 'attn' dictionary"):
        no_attn.attribute(FeatureTarget("attn", 1, 0, 0))
    with pytest.raises(ValueError, match="after query_position"):
        qk_attribution(graph, 1, 0, 2, 5)
    empty = hierarchical_attribution(graph, logit_target(task), threshold=1e6, progress=False)
    assert len(empty) == 0 and "lower the threshold" in empty.message
