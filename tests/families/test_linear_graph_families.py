"""Linear computation graphs on every row of the family matrix (the teaching model and a tiny random model
of each Hugging Face family), with random JumpReLU transcoders and TopK attention-output SAEs: the
replacement model reproduces the real model, contributions sum exactly to targets computed from the real
model's own forward (Gemma 2: its logits before the final soft-cap, computed by hand), rotary models have
no position node, bias nodes hold exactly their component's biases, and the QK split gives the real
attention pattern."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits.hierarchical import hierarchical_attribution
from interpwidgets.circuits.linear_graph import Attribution, FeatureTarget, LinearGraph, LogitTarget, linear_graph
from interpwidgets.circuits.qk import qk_attribution
from interpwidgets.models.families import save_random_family
from interpwidgets.sae import SAEConfig, build_sae
from interpwidgets.sae.sets import SAESet

EXACT = 1e-4


def dictionaries(model) -> SAESet:
    """Random JumpReLU transcoders for every MLP and TopK attention-output SAEs, with nonzero biases."""
    saes = SAESet()
    gen = torch.Generator().manual_seed(0)
    d = model.cfg.d_model
    for layer in range(model.cfg.n_layers):
        cfgs = (SAEConfig(d_in=d, d_sae=128, architecture="jumprelu", hook_name=f"blocks.{layer}.ln2.hook_normalized",
                          hook_name_out=f"blocks.{layer}.hook_mlp_out"),
                SAEConfig(d_in=d, d_sae=64, architecture="topk", k=8, hook_name=f"blocks.{layer}.hook_attn_out"))
        for cfg in cfgs:
            sae = build_sae(cfg, seed=layer)
            with torch.no_grad():
                sae.b_enc.copy_(0.1 * torch.randn(cfg.d_sae, generator=gen))
                sae.b_dec.copy_(0.1 * torch.randn(cfg.d_out, generator=gen))
            saes[cfg.hook_name] = sae
    return saes


@dataclass
class Case:
    """One IOI prompt of a model, its linear graph, and the real model's activations on it."""

    model: object
    graph: LinearGraph
    tokens: torch.Tensor  # [1, seq]
    target: LogitTarget
    attribution: Attribution  # of `target`
    cache: dict  # the real model's run_with_cache


def make_case(model, attn_saes: bool) -> Case:
    task = iw.tasks.ioi(model, n=1, seed=0)
    tokens = task.clean_tokens[:1]
    graph = linear_graph(model, dictionaries(model), tokens, attn_saes=attn_saes)
    target = LogitTarget(int(task.answer_tokens[0]), int(task.wrong_tokens[0]))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return Case(model, graph, tokens, target, graph.attribute(target), cache)


@pytest.fixture(scope="module")
def case(family_model) -> Case:
    """Transcoders only: every attention layer's OV path (frozen norms, GQA) is part of the graph."""
    return make_case(family_model, attn_saes=False)


@pytest.fixture(scope="module")
def case_attn(family_model) -> Case:
    """Transcoders and attention-output SAEs (after Gemma's post-attention norm)."""
    return make_case(family_model, attn_saes=True)


def soft_cap(model) -> float | None:
    cap = model.cfg.output_logits_soft_cap
    return cap if cap > 0 else None


@torch.no_grad()
def real_target_logits(model, tokens) -> torch.Tensor:
    """The real model's logits `[1, seq, vocab]` from its own forward; on a soft-capped model (Gemma 2) the
    logits before the cap, by hand: the final normalised residual times the unembedding, checked to give
    the model's logits once capped."""
    logits = model(tokens)
    cap = soft_cap(model)
    if cap is None:
        return logits
    _, cache = model.run_with_cache(tokens)
    lm_head = model.unembed.original_component
    pre = cache["ln_final.hook_out"] @ lm_head.weight.T + (0 if lm_head.bias is None else lm_head.bias)
    assert torch.allclose(cap * torch.tanh(pre / cap), logits, atol=1e-5)
    return pre


def logit_diff(logits: torch.Tensor, target: LogitTarget) -> float:
    row = logits[0, target.position]
    return float(row[target.answer] - row[target.wrong])


@torch.no_grad()
def frozen_replacement_logits(model, graph: LinearGraph, embed_scale: float = 1.0) -> torch.Tensor:
    """The frozen replacement model's (pre-cap) logits `[1, seq, vocab]`, run with forward hooks only: the
    graph's recorded embeddings (token embedding times `embed_scale`), patterns and norm scales, and
    dictionary outputs rebuilt from the recorded activations and errors with the dictionaries' current
    biases."""
    values = graph.values
    hooks = [("hook_embed", lambda x, hook: embed_scale * values["embed"])]
    if "pos_embed" in values:
        hooks.append(("hook_pos_embed", lambda x, hook: values["pos_embed"]))
    hooks += [(name, lambda x, hook, v=v: v) for name, v in graph.frozen.items()]
    sites = [(f"blocks.{layer}.hook_mlp_out", f"mlp{layer}", tc) for layer, tc in enumerate(graph.transcoders)]
    sites += [(f"blocks.{layer}.hook_attn_out", f"attn{layer}", sae) for layer, sae in graph.attn_saes.items()]
    for hook_name, key, sae in sites:
        hooks.append((hook_name, lambda x, hook, key=key, sae=sae: sae.decode(values[key]) + values[f"{key}/error"]))
    out = {}
    hooks.append(("unembed.hook_out", lambda x, hook: out.setdefault("logits", x)))
    with model.hooks(fwd_hooks=hooks):
        model(graph.tokens)
    return out["logits"]


# ---- every family ----------------------------------------------------------------------------------------
def test_replacement_model_reproduces_the_real_models_logits(case, case_attn):
    """(a) With transcoders (and attention SAEs) plus their errors in place, and patterns and every norm
    scale frozen, the replacement model's logits are the real model's (soft-cap included)."""
    real = case.model(case.tokens)
    for c in (case, case_attn):
        assert torch.allclose(c.graph.logits, real, atol=EXACT)


def test_logit_difference_contributions_sum_to_the_real_models_logit_difference(case, case_attn):
    """(b) The contributions of all inputs sum to the logit difference of the real model's forward (before
    the soft-cap on Gemma 2, which the attribution says): the replacement model is exactly linear with
    RMSNorm/LayerNorm scales, Gemma's (1 + w) and sandwich norms, GQA, qk-norm and rotary positions."""
    expected = logit_diff(real_target_logits(case.model, case.tokens), case.target)
    for c in (case, case_attn):
        a = c.attribution
        assert a.value == pytest.approx(expected, abs=EXACT)
        assert a.total == pytest.approx(expected, abs=EXACT)
        assert a.pre_cap == (soft_cap(c.model) is not None)
        assert {"embed", "mlp"} <= {n.kind for n in a.nodes}
        assert any(n.feature == "error" for n in a.nodes) and any(n.feature == "bias" for n in a.nodes)
    assert any(n.kind == "attn" and n.is_feature for n in case_attn.attribution.nodes)


@pytest.mark.parametrize("kind", ["mlp", "attn"])
def test_feature_contributions_sum_to_the_pre_activation_from_the_models_cache(case, case_attn, kind):
    """(c) A transcoder's (attention SAE's) feature target: contributions sum to the dictionary's
    pre-activation on the real model's cached input activation."""
    c = case if kind == "mlp" else case_attn
    layer = c.model.cfg.n_layers - 1
    sae = c.graph.transcoders[layer] if kind == "mlp" else c.graph.attn_saes[layer]
    with torch.no_grad():
        pre = sae.encode_pre(c.cache[sae.cfg.hook_name])[0, -1]  # [d_sae]
    feature = int(pre.abs().argmax())
    a = c.graph.attribute(FeatureTarget(kind, layer, feature, c.tokens.shape[1] - 1))
    assert a.total == pytest.approx(float(pre[feature]), abs=EXACT)
    assert not a.pre_cap


def test_position_node_only_on_models_with_learned_positions(case):
    """(d) Rotary models have no position-embedding input (no "pos_embed" node); learned positions (teaching,
    GPT-2) are an input like the token embedding."""
    rotary = case.model.cfg.positional_embedding_type == "rotary"
    kinds = {n.kind for n in case.attribution.nodes}
    assert ("pos_embed" in kinds) == (not rotary)
    assert ("pos_embed" in case.graph.values) == (not rotary)


def test_replacement_model_is_linear_in_the_embedding(case):
    """Every norm scale on the paths is frozen (pre-attention, Gemma's post-attention, final): doubling the
    token embedding in the frozen replacement model adds exactly the embedding's contribution."""
    a = case.attribution
    embed = sum(n.effect for n in a.nodes if n.kind == "embed")
    base = logit_diff(frozen_replacement_logits(case.model, case.graph), case.target)
    doubled = logit_diff(frozen_replacement_logits(case.model, case.graph, embed_scale=2.0), case.target)
    assert base == pytest.approx(a.value, abs=EXACT)
    assert doubled - base == pytest.approx(embed, abs=1e-3, rel=1e-4)


def test_qk_pairs_sum_to_the_score_and_give_the_real_attention_pattern(case):
    """QK attribution on every family: the pairs sum to the score of the rotated (qk-normed) query and key,
    grouped-query heads read their key/value head, and the scores of two keys differ by the log-ratio of
    the real model's pattern (soft-capped on Gemma 2)."""
    model, seq = case.model, case.tokens.shape[1]
    layer, head, qp = model.cfg.n_layers - 1, model.cfg.n_heads - 1, seq - 1
    r1, r2 = (qk_attribution(case.graph, layer, head, qp, kp) for kp in (qp, qp - 1))
    for r in (r1, r2):
        assert float(r.pairs.sum()) == pytest.approx(r.score, abs=EXACT)
        assert sum(n.effect for n in r.query_nodes) == pytest.approx(r.score, abs=EXACT)
    n_kv = getattr(model.cfg, "n_key_value_heads", None) or model.cfg.n_heads
    assert r1.key_head == head // (model.cfg.n_heads // n_kv)
    pattern = case.cache[f"blocks.{layer}.attn.hook_pattern"][0, head, qp]
    log_ratio = float(torch.log(pattern[qp]) - torch.log(pattern[qp - 1]))
    assert r1.capped_score - r2.capped_score == pytest.approx(log_ratio, abs=1e-4)


def test_hierarchical_attribution_conserves_the_target(case):
    """Hierarchical attribution runs on every family and conserves the target (pre-cap on Gemma 2)."""
    c = hierarchical_attribution(case.graph, case.target, depth=2, threshold=0.05, top_k=3, max_expansions=6,
                                 progress=False)
    m = c.metadata
    assert m["unexpanded"] + m["dropped"] == pytest.approx(m["target_value"], abs=EXACT)
    assert m["pre_cap"] == (soft_cap(case.model) is not None)
    assert len(c.nodes) > 1


# ---- single families ----------------------------------------------------------------------------------------
def test_gemma2_attributes_the_logits_before_the_soft_cap(tmp_path):
    """Gemma 2 with a soft-cap small enough to matter: the graph's logits are the capped ones, but the
    attribution (marked pre_cap) sums to the hand-computed logit difference before the cap, which differs
    clearly from the capped one."""
    model = iw.load_model(str(save_random_family("gemma2", tmp_path, final_logit_softcapping=0.5)), device="cpu")
    tokens = iw.tasks.ioi(model, n=1, seed=0).clean_tokens[:1]
    pre = real_target_logits(model, tokens)
    target = LogitTarget(int(pre[0, -1].argmax()), int(pre[0, -1].argmin()))
    graph = linear_graph(model, dictionaries(model), tokens)
    assert torch.allclose(graph.logits, model(tokens), atol=EXACT)
    a = graph.attribute(target)
    assert a.pre_cap and "pre-cap" in graph.target_node(target).label
    assert a.total == pytest.approx(logit_diff(pre, target), abs=EXACT)
    assert abs(logit_diff(model(tokens), target) - a.total) > 1e-2


def test_qk_attribution_refuses_a_key_outside_the_sliding_window(tmp_path):
    """Mistral attends within a window of 8 keys: a key further back is masked, which QK attribution says
    instead of splitting a score the model never used."""
    model = iw.load_model(str(save_random_family("mistral", tmp_path)), device="cpu")
    c = make_case(model, attn_saes=False)
    qp = c.tokens.shape[1] - 1
    assert float(c.cache["blocks.0.attn.hook_pattern"][0, 0, qp, qp - 8]) == 0.0
    with pytest.raises(ValueError, match="masked"):
        qk_attribution(c.graph, 0, 0, qp, qp - 8)
    qk_attribution(c.graph, 0, 0, qp, qp - 7)


# Hugging Face parameter-name pieces of each component's biases (a block's layer is matched separately)
BIAS_NAMES = {
    "gpt2": {"attn": ("ln_1.", ".attn."), "mlp": ("ln_2.", ".mlp."), "logit": ("ln_f.",)},
    "pythia": {"attn": ("input_layernorm.", ".attention."), "mlp": ("post_attention_layernorm.", ".mlp."),
               "logit": ("final_layer_norm.",)},
    "qwen2": {"attn": (".self_attn.",), "mlp": (".mlp.",), "logit": ("model.norm.",)},
}


def component_biases(model, graph: LinearGraph, family: str, kind: str, layer: int) -> list[torch.nn.Parameter]:
    """The biases of one component, chosen by their Hugging Face names (plus, for the MLP, its transcoder's
    and, for attention, its SAE's biases)."""
    pieces = BIAS_NAMES[family][kind]
    in_layer = re.compile(rf"\.(?:h|layers)\.{layer}\.")
    out = [p for name, p in model.named_parameters() if name.endswith("bias") and any(s in name for s in pieces)
           and (kind == "logit" or in_layer.search(name))]
    dictionary = {"mlp": dict(enumerate(graph.transcoders)), "attn": graph.attn_saes}.get(kind, {}).get(layer)
    return out + ([dictionary.b_enc, dictionary.b_dec] if dictionary is not None else [])


@contextmanager
def zeroed(params):
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


@pytest.mark.parametrize("family", sorted(BIAS_NAMES))
def test_bias_nodes_hold_exactly_their_components_biases(family, tmp_path):
    """Bias nodes are grouped by the right component (GPT-2's c_attn/c_proj, GPT-NeoX's fused
    query_key_value and dense, Qwen 2's q/k/v_proj biases, layer norm biases): zeroing one component's
    biases (chosen by their Hugging Face names) in the frozen replacement model changes the logit
    difference by exactly that component's bias node (0 where it has none). Without attention SAEs, so
    that the model's attention biases are inputs (an MLP's own biases never are: its transcoder's are)."""
    model = iw.load_model(str(save_random_family(family, tmp_path)), device="cpu")  # its own copy: weights are zeroed
    c = make_case(model, attn_saes=False)
    effects = {(n.kind, n.layer): n.effect for n in c.attribution.nodes if n.feature == "bias"}
    base = logit_diff(frozen_replacement_logits(model, c.graph), c.target)
    n_layers = model.cfg.n_layers
    groups = [(kind, layer) for kind in ("attn", "mlp") for layer in range(n_layers)] + [("logit", n_layers)]
    for kind, layer in groups:
        params = component_biases(model, c.graph, family, kind, layer)
        with zeroed(params):
            change = base - logit_diff(frozen_replacement_logits(model, c.graph), c.target)
        assert change == pytest.approx(effects.get((kind, layer), 0.0), abs=EXACT), (kind, layer)
    assert abs(effects[("attn", 1)]) > 1e-3  # the check has something to find
