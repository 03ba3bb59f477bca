"""SAEs, transcoders and feature circuits on every row of the family matrix (random weights).

Each check is a hand computation that holds on any model: explained variance from cached activations,
splicing with the error term reproduces the logits, steering adds alpha * W_dec[f] at the hook,
ablation subtracts f * W_dec[f], node effects sum to the site's attribution, faithfulness runs from
0 (no node) to 1 (every node), integrated gradients converge to the total effect, and the heads' shares
of an attention feature are what removing the heads takes away. Then float32 dictionaries on bfloat16
models (and the reverse), and a model without a tokenizer.
"""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits.effects import node_effects
from interpwidgets.circuits.faithfulness import faithfulness_curve
from interpwidgets.circuits.heads import attention_feature_heads
from interpwidgets.models.families import save_random_family
from interpwidgets.sae import SAEConfig, build_sae
from interpwidgets.sae.sets import SAESet

RESID, TC_IN, TC_OUT = "blocks.1.hook_resid_post", "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"
TINY = dict(d_sae=32, total_tokens=1024, batch_size=128, buffer_tokens=256, context_size=16, model_batch_size=8,
            progress=False)
SITE_HOOKS = {"resid": "hook_resid_post", "attn": "hook_attn_out", "mlp": "hook_mlp_out"}


@pytest.fixture(scope="module")
def trained(family_model):
    """A TopK SAE on the residual stream and a ReLU transcoder of the MLP of layer 1, trained briefly."""
    sae = iw.sae.train(family_model, RESID, architecture="topk", k=4, **TINY)
    tc = iw.sae.train(family_model, TC_IN, hook_name_out=TC_OUT, architecture="relu", **TINY)
    return sae, tc


@pytest.fixture(scope="module")
def tokens(family_model):
    return iw.tasks.ioi(family_model, n=4, seed=0).clean_tokens


def random_saes(model, d_sae: int = 8) -> SAESet:
    """Random SAEs at the residual stream, attention output and MLP output of every layer."""
    saes = SAESet()
    for layer in range(model.cfg.n_layers):
        for i, hook in enumerate(SITE_HOOKS.values()):
            name = f"blocks.{layer}.{hook}"
            saes[name] = build_sae(SAEConfig(d_in=model.cfg.d_model, d_sae=d_sae, hook_name=name), seed=10 * layer + i)
    return saes


def cached(model, tokens: torch.Tensor, *names: str) -> list[torch.Tensor]:
    _, cache = model.run_with_cache(tokens, names_filter=list(names))
    return [cache[n] for n in names]


def test_sae_and_transcoder_train_on_the_familys_hooks(family_model, trained):
    sae, tc = trained
    d_model = family_model.cfg.d_model
    assert (sae.cfg.hook_name, sae.cfg.d_in, sae.cfg.d_out) == (RESID, d_model, d_model)
    assert tc.is_transcoder and (tc.cfg.hook_name, tc.cfg.hook_name_out) == (TC_IN, TC_OUT)
    assert all(torch.isfinite(p).all() for d in trained for p in d.parameters())


@pytest.mark.parametrize("which", [0, 1], ids=["sae", "transcoder"])
def test_evaluate_is_finite_and_its_explained_variance_is_the_hand_computed_one(family_model, trained, tokens, which):
    sae = trained[which]
    stats = iw.sae.evaluate(family_model, sae, tokens)
    scalars = {k: v for k, v in stats.items() if isinstance(v, float)}
    assert all(torch.isfinite(torch.tensor(v)) for v in scalars.values()), scalars
    x, y = (a.flatten(0, 1) for a in cached(family_model, tokens, sae.cfg.hook_name, sae.cfg.output_hook))
    with torch.no_grad():
        err = (y - sae(x)).pow(2).sum()
    by_hand = 1 - err / (y - y.mean(0)).pow(2).sum()
    assert stats["explained_variance"] == pytest.approx(by_hand.item(), abs=1e-4)
    assert stats["n_tokens"] == tokens.numel() and 0 < stats["l0"] <= sae.cfg.d_sae


def test_splicing_keeps_the_logits_with_the_error_term_and_changes_them_without(family_model, trained, tokens):
    with torch.no_grad():
        clean = family_model(tokens)
        with iw.sae.spliced(family_model, list(trained), error_term=True) as run:
            kept = family_model(tokens)
        with iw.sae.spliced(family_model, list(trained), error_term=False):
            replaced = family_model(tokens)
    assert (kept - clean).abs().max() < 1e-4
    assert (replaced - clean).abs().max() > 1e-3
    assert run.features[RESID].shape == (*tokens.shape, trained[0].cfg.d_sae)


def test_steering_adds_alpha_times_the_decoder_row_at_the_hook(family_model, trained, tokens):
    sae, alpha, feature = trained[0], 3.0, 5
    after = "blocks.2.hook_resid_pre"  # reads what layer 1 writes
    (clean,) = cached(family_model, tokens, after)
    with torch.no_grad():
        _, cache = iw.sae.steer_feature(family_model, sae, feature, alpha, positions=[-1]).run_with_cache(
            tokens, names_filter=[after])
    expected = clean.clone()
    expected[:, -1] += alpha * sae.W_dec[feature]
    torch.testing.assert_close(cache[after], expected, rtol=1e-5, atol=1e-5)


def test_ablating_features_subtracts_their_decoder_contributions(family_model, trained, tokens):
    sae = trained[0]
    after = "blocks.2.hook_resid_pre"
    (clean,) = cached(family_model, tokens, after)
    with torch.no_grad():
        f = sae.encode(clean)
        chosen = f.flatten(0, 1).abs().sum(0).topk(2).indices.tolist()
        logits = family_model(tokens)
        _, cache = iw.sae.ablate_features(family_model, sae, chosen).run_with_cache(tokens, names_filter=[after])
        ablated_logits = iw.sae.ablate_features(family_model, sae, chosen).run(tokens)
    torch.testing.assert_close(cache[after], clean - f[..., chosen] @ sae.W_dec[chosen], rtol=1e-5, atol=1e-5)
    assert (ablated_logits - logits).abs().max() > 1e-4


@pytest.fixture(scope="module")
def circuit_setup(family_model):
    saes = random_saes(family_model)
    task = iw.tasks.ioi(family_model, n=3, seed=0)
    atp = node_effects(family_model, saes, task.clean_tokens, task.corrupt_tokens, task.metric, method="atp",
                       progress=False)
    return saes, task, atp


def test_node_effects_at_each_site_sum_to_the_sites_attribution_patching(circuit_setup):
    _, _, atp = circuit_setup
    for site in atp.sites:
        whole = (atp.grads[site.name] * (atp.x_patch[site.name] - atp.x_clean[site.name])).sum()
        assert atp.effects[site.name].sum().item() == pytest.approx(whole.item(), rel=1e-4, abs=1e-5), site.name


def test_faithfulness_is_zero_for_no_node_and_one_for_every_node(family_model, circuit_setup):
    saes, task, atp = circuit_setup
    curve = faithfulness_curve(family_model, saes, task, atp, sizes=[0, atp.n_nodes], progress=False)
    assert curve.faithfulness == pytest.approx([0.0, 1.0], abs=1e-3)
    assert curve.completeness == pytest.approx([1.0, 0.0], abs=1e-3)


@pytest.mark.parametrize("method", ["atp", "ig"])
def test_feature_circuit_runs_with_nodes_and_edges(family_model, circuit_setup, method):
    saes, task, _ = circuit_setup
    c = iw.circuits.feature_circuit(family_model, saes, task, method=method, steps=2, node_threshold=0.0, top_n=12,
                                    edge_threshold=0.0, progress=False)
    assert len(c.nodes) == 13 and len(c.edges) > 0
    assert all(torch.isfinite(torch.tensor([n.effect for n in c.nodes] + [e.weight for e in c.edges])))


def test_ig_of_the_last_residual_site_converges_to_the_total_patching_effect(family_model, circuit_setup):
    """The last residual stream is a bottleneck: patching all of it gives the corrupt metric. IG's Riemann
    error falls like 1 / steps."""
    saes, task, _ = circuit_setup
    last = f"resid_post{family_model.cfg.n_layers - 1}"
    errors = []
    for steps in (8, 32):
        ig = node_effects(family_model, saes, task.clean_tokens, task.corrupt_tokens, task.metric, method="ig",
                          steps=steps, kinds=("resid",), progress=False)
        errors.append(abs(ig.effects[last].sum().item() - (ig.metric_patch - ig.metric_clean)))
    assert errors[1] < 0.4 * errors[0] + 1e-6


def test_heads_shares_of_an_attention_feature_sum_to_its_pre_activation(family_model, circuit_setup):
    """Zeroing every head's z leaves only the constant part of the pre-activation; the heads' shares are the rest."""
    saes, task, _ = circuit_setup
    hook, z = "blocks.1.hook_attn_out", "blocks.1.attn.hook_z"
    sae, tokens = saes[hook], task.clean_tokens
    with torch.no_grad():
        (clean,) = cached(family_model, tokens, hook)
        with iw.interventions.hooked(family_model, [(z, lambda x, hook: torch.zeros_like(x))]):
            (no_heads,) = cached(family_model, tokens, hook)
        pos = tokens.shape[1] - 1
        pre, base = sae.encode_pre(clean)[:, pos].mean(0), sae.encode_pre(no_heads)[:, pos].mean(0)
    features = [0, 1, 2]
    heads = attention_feature_heads(family_model, sae, tokens, features, pos)
    assert heads.shape == (3, family_model.cfg.n_heads)
    torch.testing.assert_close(heads.sum(-1), (pre - base)[features], rtol=1e-4, atol=1e-5)


def test_each_heads_share_is_what_zeroing_that_head_removes(family_model, circuit_setup):
    """Without a norm after attention, the pre-activation is affine in each head's z: zeroing head h removes
    exactly its share (on grouped-query models too, where query heads share key/value heads)."""
    if hasattr(family_model.blocks[1], "ln1_post"):
        pytest.skip("a post-attention RMSNorm rescales when a head is removed; the sum is checked above")
    saes, task, _ = circuit_setup
    hook, sae, tokens = "blocks.1.hook_attn_out", saes["blocks.1.hook_attn_out"], task.clean_tokens
    pos = tokens.shape[1] - 1
    heads = attention_feature_heads(family_model, sae, tokens, [0, 1], pos)
    (clean,) = cached(family_model, tokens, hook)
    for h in range(family_model.cfg.n_heads):
        def zero_head(z, hook, h=h):
            z = z.clone()
            z[:, :, h] = 0
            return z

        with torch.no_grad(), iw.interventions.hooked(family_model, [("blocks.1.attn.hook_z", zero_head)]):
            (without,) = cached(family_model, tokens, hook)
        removed = (sae.encode_pre(clean) - sae.encode_pre(without))[:, pos, :2].mean(0)
        torch.testing.assert_close(heads[:, h], removed, rtol=1e-4, atol=1e-5)


# ---- a bfloat16 model with float32 dictionaries, and a model without a tokenizer ------------------------
@pytest.fixture(scope="module", params=["gpt2", "llama"])
def bf16_model(request, tmp_path_factory):
    folder = save_random_family(request.param, tmp_path_factory.mktemp(f"{request.param}-bf16"))
    return iw.load_model(str(folder), device="cpu", dtype="bfloat16")


def test_float32_dictionaries_run_on_a_bfloat16_model_cast_at_the_boundary(bf16_model):
    model = bf16_model
    tokens = iw.tasks.ioi(model, n=4, seed=0).clean_tokens
    sae = iw.sae.train(model, RESID, architecture="topk", k=4, **TINY)
    tc = iw.sae.train(model, TC_IN, hook_name_out=TC_OUT, architecture="relu", **TINY)
    assert sae.W_enc.dtype == torch.float32
    stats = iw.sae.evaluate(model, sae, tokens)
    (x,) = cached(model, tokens, RESID)
    with torch.no_grad():
        x = x.flatten(0, 1).float()
        by_hand = 1 - (x - sae(x)).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert stats["explained_variance"] == pytest.approx(by_hand.item(), abs=1e-3)
    with torch.no_grad():
        clean = model(tokens)
        with iw.sae.spliced(model, [sae, tc], error_term=True):
            kept = model(tokens)
        steered = iw.sae.steer_feature(model, sae, 0, 4.0).run(tokens)
        ablated = iw.sae.ablate_features(model, tc, [0, 1, 2]).run(tokens)
    assert kept.dtype == torch.bfloat16 and torch.equal(kept, clean)  # x_hat + (x - x_hat) rounds back to x
    assert (steered - clean).abs().max() > 0 and torch.isfinite(ablated).all()
    acts = iw.sae.feature_activations(model, sae, tokens[0]).acts
    assert acts.dtype == torch.float32 and acts.shape == (tokens.shape[1], sae.cfg.d_sae)


def test_feature_circuits_run_on_a_bfloat16_model(bf16_model):
    model = bf16_model
    saes, task = random_saes(model), iw.tasks.ioi(model, n=3, seed=0)
    atp = node_effects(model, saes, task.clean_tokens, task.corrupt_tokens, task.metric, method="atp", progress=False)
    assert all(e.dtype == torch.float32 and torch.isfinite(e).all() for e in atp.effects.values())
    # zero ablation: a random model's logit difference is below bfloat16's resolution for mean ablation
    curve = faithfulness_curve(model, saes, task, atp, sizes=[0, atp.n_nodes], ablation="zero", progress=False)
    assert curve.faithfulness[0] == pytest.approx(0.0, abs=1e-6) and curve.faithfulness[1] == pytest.approx(1.0, abs=0.05)
    c = iw.circuits.feature_circuit(model, saes, task, method="ig", steps=2, node_threshold=0.0, top_n=6,
                                    edge_threshold=0.0, progress=False)
    assert len(c.nodes) == 7 and all(torch.isfinite(torch.tensor([e.weight for e in c.edges])))
    heads = attention_feature_heads(model, saes["blocks.1.hook_attn_out"], task.clean_tokens, [0, 1])
    assert heads.shape == (2, model.cfg.n_heads) and torch.isfinite(heads).all()


def test_a_bfloat16_dictionary_runs_on_a_float32_model(family_model, trained, tokens):
    sae = build_sae(trained[0].cfg)
    sae.load_state_dict(trained[0].state_dict())
    sae = sae.to(torch.bfloat16)
    stats = iw.sae.evaluate(family_model, sae, tokens)
    assert torch.isfinite(torch.tensor(stats["explained_variance"]))
    with torch.no_grad(), iw.sae.spliced(family_model, sae, error_term=True) as run:
        logits = family_model(tokens)
    assert logits.dtype == torch.float32 and run.features[RESID].dtype == torch.bfloat16


def test_a_model_without_a_tokenizer_trains_on_token_ids_and_names_tokens_by_id(tmp_path):
    model = iw.load_model(str(save_random_family("llama", tmp_path, tokenizer=False)), device="cpu")
    with pytest.raises(ValueError, match="no tokenizer.*pass tokens= as an integer tensor"):
        iw.sae.train(model, RESID, architecture="topk", k=4, **TINY)
    tokens = torch.randint(1, model.cfg.d_vocab, (16, 16), generator=torch.Generator().manual_seed(0))
    sae = iw.sae.train(model, RESID, tokens, architecture="topk", k=4, **TINY)
    assert iw.sae.feature_activations(model, sae, tokens[0]).str_tokens[:2] == [f"#{int(t)}" for t in tokens[0, :2]]
    top = iw.sae.top_activating(model, sae, int(sae.encode(cached(model, tokens, RESID)[0]).sum((0, 1)).argmax()), tokens, k=2)
    assert top and all(t.startswith("#") for t in top[0].str_tokens)
    assert all(name.startswith("#") for name, _ in iw.sae.logit_effects(model, sae, 0, k=3).top)
