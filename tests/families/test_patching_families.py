"""Patching on every row of the family matrix (the teaching architecture and a tiny random model of each
Hugging Face family), against references that do not use our stacked forwards: transformer_lens.patching,
one plain hooked forward per cell, and hand computations from the model's own modules."""

from __future__ import annotations

import pytest
import torch
import transformer_lens.patching as tlp

from interpwidgets.interventions import count_hooks, run_hooked
from interpwidgets.interventions.components import kv_heads
from interpwidgets.patching import activation_patch, attribution_patch, path_patch
from interpwidgets.tasks import Task, ioi

RAW = dict(normalize=False, progress=False)


@pytest.fixture(scope="module")
def tiny(family_model):
    """3 prompts of 6 random tokens; corrupt differs from clean at positions 2 and 4."""
    gen = torch.Generator().manual_seed(0)
    vocab = family_model.cfg.d_vocab
    clean = torch.randint(1, vocab, (3, 6), generator=gen)
    corrupt = clean.clone()
    corrupt[:, [2, 4]] = torch.randint(1, vocab, (3, 2), generator=gen)
    answers, wrongs = torch.randint(1, vocab, (2, 3), generator=gen)
    return Task("tiny", clean, corrupt, answers, wrongs)


def is_gqa(model) -> bool:
    return kv_heads(model) != model.cfg.n_heads


def tl_reference(fn, model, task):
    """transformer_lens.patching's denoising sweep (clean activations into the corrupt run)."""
    with torch.no_grad():
        _, cache = model.run_with_cache(task.clean_tokens)
        return fn(model, task.corrupt_tokens, cache, task.metric).cpu()


def per_cell_reference(model, task, hook: str, head: int | None, position: int | None) -> float:
    """One plain forward of the corrupt prompts with one hook's slice set to its clean value."""
    with torch.no_grad():
        _, cache = model.run_with_cache(task.clean_tokens, names_filter=[hook])
    clean = cache[hook]
    pattern = hook.endswith("hook_pattern")

    def set_clean(act, hook):
        act = act.clone()
        index = [slice(None)] * act.ndim
        if head is not None:
            index[1 if pattern else 2] = head
        if position is not None:
            index[2 if pattern else 1] = position
        act[tuple(index)] = clean[tuple(index)]
        return act

    with torch.no_grad():
        return float(task.metric(run_hooked(model, task.corrupt_tokens, [(hook, set_clean)])))


TL_CASES = [
    (tlp.get_act_patch_resid_pre, "resid_pre", "position", None),
    (tlp.get_act_patch_resid_mid, "resid_mid", "position", None),
    (tlp.get_act_patch_attn_out, "attn_out", "position", None),
    (tlp.get_act_patch_mlp_out, "mlp_out", "position", None),
    (tlp.get_act_patch_attn_head_out_by_pos, "z", "head_position", (0, 2, 1)),
    (tlp.get_act_patch_attn_head_q_by_pos, "q", "head_position", (0, 2, 1)),
    (tlp.get_act_patch_attn_head_pattern_by_pos, "pattern", "head_position", None),
    (tlp.get_act_patch_attn_head_out_all_pos, "z", "head", None),
    (tlp.get_act_patch_attn_head_q_all_pos, "q", "head", None),
    (tlp.get_act_patch_attn_head_pattern_all_pos, "pattern", "head", None),
    (tlp.get_act_patch_attn_head_k_all_pos, "k", "head", None),
    (tlp.get_act_patch_attn_head_v_all_pos, "v", "head", None),
    (tlp.get_act_patch_attn_head_k_by_pos, "k", "head_position", (0, 2, 1)),
    (tlp.get_act_patch_attn_head_v_by_pos, "v", "head_position", (0, 2, 1)),
]


@pytest.mark.parametrize("fn, site, by, order", TL_CASES, ids=[f"{c[1]}-{c[2]}" for c in TL_CASES])
def test_activation_patching_equals_transformer_lens_patching_on_every_family(family_model, tiny, fn, site, by, order):
    """Every site transformer_lens.patching has, to 1e-4 in float32. Where the reference cannot run (k/v on
    grouped-query models, whose per-head functions index query heads into key/value heads; resid_mid on
    parallel-attention models, which have no such hook) the next tests cover it."""
    model = family_model
    if site in ("k", "v") and is_gqa(model):
        pytest.skip("transformer_lens.patching indexes query heads into hook_k/hook_v; see the per-kv-head test")
    if site == "resid_mid" and "blocks.0.hook_resid_mid" not in model.hook_dict:
        pytest.skip("no resid_mid in a parallel-attention block; see test_sites_a_family_lacks_say_so")
    expected = tl_reference(fn, model, tiny)
    ours = activation_patch(model, tiny, site=site, by=by, **RAW)
    expected = expected.permute(order) if order else expected
    assert ours.values.shape == expected.shape
    torch.testing.assert_close(ours.values, expected, atol=1e-4, rtol=0)
    assert count_hooks(model) == 0


def test_resid_post_equals_the_next_layers_resid_pre(family_model, tiny):
    """blocks.L.hook_resid_post is blocks.L+1.hook_resid_pre: patching either gives the same metric."""
    post = activation_patch(family_model, tiny, site="resid_post", **RAW).values
    pre = activation_patch(family_model, tiny, site="resid_pre", **RAW).values
    torch.testing.assert_close(post[:-1], pre[1:], atol=1e-4, rtol=0)


@pytest.mark.parametrize("letter", ["k", "v"])
def test_key_value_patching_is_per_key_value_head_and_equals_plain_hooked_runs(family_model, tiny, letter):
    """On grouped-query models k/v cells are the shared key/value heads (axis "kv_head", one row per kv head,
    labelled with the query heads that read it); every cell equals a plain forward patching that kv head."""
    model = family_model
    result = activation_patch(model, tiny, site=letter, by="head_position", **RAW)
    n_kv = kv_heads(model)
    assert result.values.shape == (model.cfg.n_layers, n_kv, tiny.clean_tokens.shape[1])
    assert result.axes[1] == ("kv_head" if is_gqa(model) else "head")
    if is_gqa(model):
        group = model.cfg.n_heads // n_kv
        assert result.labels["kv_head"][1] == f"KV1 (H{group}-H{2 * group - 1})"
    for layer, head, position in [(0, 0, 2), (1, n_kv - 1, 4), (model.cfg.n_layers - 1, 1, 5)]:
        expected = per_cell_reference(model, tiny, f"blocks.{layer}.attn.hook_{letter}", head, position)
        assert float(result.values[layer, head, position]) == pytest.approx(expected, abs=1e-4)


def test_sites_a_family_lacks_say_so_and_leave_the_model_clean(family_model, tiny):
    """A site the architecture has no hook for gets a ValueError naming it; no hook is left behind."""
    if "blocks.0.hook_resid_mid" in family_model.hook_dict:
        pytest.skip("this family has resid_mid")
    with pytest.raises(ValueError, match="has no 'blocks.0.hook_resid_mid'"):
        activation_patch(family_model, tiny, site="resid_mid", **RAW)
    assert count_hooks(family_model) == 0


# ---- path patching: hand computations from the model's own modules --------------------------------------
def attention_write(model, layer: int, z: torch.Tensor) -> torch.Tensor:
    """What block `layer`'s attention adds to the residual stream for head outputs z [batch, pos, head, d_head]:
    the output projection, then Gemma's post-attention norm where the block has one."""
    block = model.blocks[layer]
    out = block.attn.o(z.flatten(-2))
    return block.ln1_post(out) if hasattr(block, "ln1_post") else out


def head_delta(model, clean, corrupt, layer: int, head: int) -> torch.Tensor:
    """The change in the residual stream when only `head` takes its corrupt output (others clean)."""
    name = f"blocks.{layer}.attn.hook_z"
    z = clean[name].clone()
    z[:, :, head] = corrupt[name][:, :, head]
    return attention_write(model, layer, z) - attention_write(model, layer, clean[name])


def unembed(model, resid: torch.Tensor) -> torch.Tensor:
    """Final norm (recomputed), unembedding and, on Gemma 2, the final-logit soft-cap."""
    logits = model.unembed(model.ln_final(resid))
    cap = getattr(model.cfg, "output_logits_soft_cap", -1.0) or -1.0
    return cap * torch.tanh(logits / cap) if cap > 0 else logits


def caches(model, task):
    with torch.no_grad():
        return model.run_with_cache(task.clean_tokens)[1], model.run_with_cache(task.corrupt_tokens)[1]


def test_final_residual_through_norm_and_unembedding_reproduces_the_logits(family_model, tiny):
    """The premise of the hand computations: clean final residual -> final norm -> unembed (-> soft-cap) = logits."""
    with torch.no_grad():
        logits, cache = family_model.run_with_cache(tiny.clean_tokens)
        final = cache[f"blocks.{family_model.cfg.n_layers - 1}.hook_resid_post"]
        torch.testing.assert_close(unembed(family_model, final), logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layer, head", [(0, 1), (1, 3)])
def test_path_patching_a_head_to_the_logits_equals_the_hand_computation(family_model, tiny, layer, head):
    """Head -> logits: clean final residual + the head's corrupt-minus-clean write (through the output
    projection and any post-attention norm), through the final norm and unembedding (soft-cap included)."""
    model = family_model
    clean, corrupt = caches(model, tiny)
    final = clean[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    with torch.no_grad():
        expected = float(tiny.metric(unembed(model, final + head_delta(model, clean, corrupt, layer, head))))
    result = path_patch(model, tiny, senders=[f"L{layer}H{head}"], receivers="logits", **RAW)
    assert float(result.values[0]) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("letter", ["q", "k", "v"])
def test_path_patching_a_head_into_a_later_heads_input_equals_the_hand_computation(family_model, tiny, letter):
    """L0H1 -> L2H2's q/k/v: recompute ln1 and the projection of (clean resid_pre2 + the sender's write), set
    that head's slice (its key/value head on grouped-query models) in a plain clean run, read the metric."""
    model = family_model
    clean, corrupt = caches(model, tiny)
    block, receiver = model.blocks[2], 2
    slot = receiver // (model.cfg.n_heads // kv_heads(model)) if letter in "kv" else receiver
    resid = clean["blocks.2.hook_resid_pre"] + head_delta(model, clean, corrupt, 0, 1)
    with torch.no_grad():
        projected = getattr(block.attn, letter)(block.ln1(resid))
    projected = projected.view(*projected.shape[:2], -1, model.cfg.d_head)[:, :, slot]

    def set_head(act, hook):
        act = act.clone()
        act[:, :, slot] = projected
        return act

    with torch.no_grad():
        expected = float(tiny.metric(run_hooked(model, tiny.clean_tokens, [(f"blocks.2.attn.hook_{letter}", set_head)])))
    result = path_patch(model, tiny, senders=["L0H1"], receivers=f"L2H{receiver}.{letter}", **RAW)
    assert float(result.values[0]) == pytest.approx(expected, abs=1e-4)


def test_path_patching_the_last_mlp_to_the_logits_equals_patching_its_output(family_model, tiny):
    """Nothing but the unembedding reads the last MLP, so its direct path is its whole effect."""
    last = family_model.cfg.n_layers - 1
    path = path_patch(family_model, tiny, senders=[f"mlp{last}"], receivers="logits", patch_into="clean", **RAW)
    act = activation_patch(family_model, tiny, site="mlp_out", by="layer", patch_into="clean", **RAW)
    torch.testing.assert_close(path.values[0], act.values[last], atol=1e-4, rtol=0)


# ---- attribution patching ---------------------------------------------------------------------------------
@pytest.mark.parametrize("site, hook, head", [("resid_pre", "blocks.1.hook_resid_pre", None),
                                              ("z", "blocks.1.attn.hook_z", 2), ("v", "blocks.2.attn.hook_v", 1)])
def test_attribution_patching_is_the_first_order_change_a_finite_difference_measures(family_model, tiny, site, hook, head):
    """atp: each cell's estimate minus the base metric is d metric / d eps of moving that cell eps of the way
    from corrupt to clean, checked by a central difference of plain hooked runs (an independent derivative)."""
    model = family_model
    by = "position" if head is None else "head_position"
    estimate = attribution_patch(model, tiny, site=site, by=by, method="atp", **RAW)
    with torch.no_grad():
        clean, corrupt = (model.run_with_cache(t, names_filter=[hook])[1][hook] for t in (tiny.clean_tokens, tiny.corrupt_tokens))
    position, eps = 4, 1e-2

    def moved(step: float) -> float:
        def shift(act, hook):
            act = act.clone()
            index = (slice(None), position) + ((head,) if head is not None else ())
            act[index] += step * (clean - corrupt)[index]
            return act

        with torch.no_grad():
            return float(tiny.metric(run_hooked(model, tiny.corrupt_tokens, [(hook, shift)])))

    derivative = (moved(eps) - moved(-eps)) / (2 * eps)
    layer = int(hook.split(".")[1])
    cell = (layer, position) if head is None else (layer, head, position)
    assert float(estimate.values[cell]) - estimate.corrupt_metric == pytest.approx(derivative, rel=0.02, abs=1e-3)


def test_integrated_gradients_track_exact_patching_on_every_family(family_model):
    """ig estimates of every head's patching effect correlate with the exact effects on IOI prompts (r > 0.8 on
    these random models; 0.998 on the trained teaching model, tests/unit/test_patching_attribution.py). The Gemma
    families are the least additive (r 0.92 and 0.89 on 8 prompts, 0.86 and 0.80 on 4, the same at 8 or 32 steps:
    ig moves every head at once, patching one), so the mean is taken over 8 prompts."""
    task = ioi(family_model, n=8, seed=0)
    exact = activation_patch(family_model, task, site="z", **RAW).values.flatten()
    estimate = attribution_patch(family_model, task, site="z", method="ig", steps=8, **RAW).values.flatten()
    r = float(torch.corrcoef(torch.stack([exact, estimate]))[0, 1])
    assert r > 0.8, f"Pearson r {r:.3f} with exact patching"


def test_integrated_gradients_over_a_whole_layer_sum_to_patching_that_layer(family_model):
    """Completeness: the ig effects of every position of resid_pre at one layer add up to patching all of it,
    which is the clean run (0 -> clean - corrupt); a wrong gradient or path breaks the sum."""
    model = family_model
    task = ioi(model, n=4, seed=0)
    ig = attribution_patch(model, task, site="resid_pre", method="ig", steps=16, **RAW)
    gap = ig.clean_metric - ig.corrupt_metric
    total = float((ig.values[1] - ig.corrupt_metric).sum())
    assert total == pytest.approx(gap, abs=0.05 * abs(gap) + 1e-3)


# ---- precision ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["teaching", "llama"])
def test_bfloat16_models_patch_in_their_dtype_and_agree_with_float32(family, tmp_path):
    """A bfloat16 model keeps its dtype; activation, attribution and path patching run in it, return float32
    values, and agree with the float32 model's to the precision of the bfloat16 forward pass itself: an effect is
    a difference of two logit differences, four logits, so it can be off by 4x the largest logit error of the
    bfloat16 model on the task's prompts (measured here against float32)."""
    import interpwidgets as iw
    from interpwidgets.models.families import save_random_family

    source = None if family == "teaching" else str(save_random_family(family, tmp_path))
    half = iw.load_model(source, device="cpu", dtype="bfloat16")
    full = iw.load_model(source, device="cpu")
    task = ioi(full, n=4, seed=0)
    with torch.no_grad():
        logit_error = max(float((half(t).float() - full(t)).abs().max()) for t in (task.clean_tokens, task.corrupt_tokens))
    assert 0 < logit_error < 0.05 * float(full(task.clean_tokens).abs().max())  # bfloat16 really ran, and ran sanely
    for run in (lambda m: activation_patch(m, task, site="z", **RAW), lambda m: attribution_patch(m, task, site="resid_pre", **RAW),
                lambda m: path_patch(m, task, senders="heads", **RAW)):
        expected, got = run(full).values, run(half).values
        assert got.dtype == torch.float32 and next(half.parameters()).dtype == torch.bfloat16
        assert float((got - expected).abs().max()) <= 4 * logit_error + 1e-3
