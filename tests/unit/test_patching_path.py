"""Path patching: the definition's invariants (a: the last MLP, b: last-layer heads without MLPs, c: a head's
direct write into the logits) and hand computations from the weights on small random models."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.interventions import count_hooks, patch, run_hooked
from interpwidgets.patching import activation_patch, path_patch
from interpwidgets.tasks import ioi

RAW = dict(normalize=False, progress=False)


@pytest.fixture(scope="module")
def task(random_model):
    return ioi(random_model, n=2, seed=0)


@pytest.fixture(scope="module")
def attn_task(attn_only_model):
    return ioi(attn_only_model, n=2, seed=0)


def caches(model, task):
    with torch.no_grad():
        return model.run_with_cache(task.clean_tokens)[1], model.run_with_cache(task.corrupt_tokens)[1]


def head_write(model, cache, layer, head):
    """A head's residual-stream write, z_h @ W_O[h]: [batch, pos, d_model]."""
    return cache[f"blocks.{layer}.attn.hook_z"][:, :, head] @ model.blocks[layer].attn.W_O[head]


@pytest.mark.parametrize("patch_into", ["clean", "corrupt"])
def test_a_last_mlp_to_logits_equals_activation_patching_that_mlp(random_model, task, patch_into):
    """Invariant (a): nothing reads the last MLP's output but the unembedding."""
    last = random_model.cfg.n_layers - 1
    path = path_patch(random_model, task, senders=[f"mlp{last}"], receivers="logits", patch_into=patch_into, **RAW)
    act = activation_patch(random_model, task, site="mlp_out", by="layer", patch_into=patch_into, **RAW)
    torch.testing.assert_close(path.values[0], act.values[last], atol=1e-4, rtol=0)


def test_b_attention_only_last_layer_heads_to_logits_equal_patching_their_outputs(attn_only_model, attn_task):
    """Invariant (b): without MLPs, a last-layer head reaches the logits only directly; alone and as a set."""
    sweep = path_patch(attn_only_model, attn_task, senders="heads", receivers="logits", **RAW)
    act = activation_patch(attn_only_model, attn_task, site="z", by="head", patch_into="clean", **RAW)
    torch.testing.assert_close(sweep.values[-1], act.values[-1], atol=1e-4, rtol=0)
    heads = [f"L1H{h}" for h in range(attn_only_model.cfg.n_heads)]
    together = path_patch(attn_only_model, attn_task, senders=[heads], receivers="logits", **RAW)
    with torch.no_grad():
        logits = patch(attn_only_model, heads, attn_task.corrupt_tokens).run(attn_task.clean_tokens)
    assert float(together.values[0]) == pytest.approx(float(attn_task.metric(logits)), abs=1e-4)


def test_c_head_to_logits_equals_the_direct_write_through_layernorm_and_unembedding(random_model, task):
    """Invariant (c): clean final residual + (corrupt - clean) head write, through ln_final (recomputed) and unembed."""
    clean, corrupt = caches(random_model, task)
    final = clean[f"blocks.{random_model.cfg.n_layers - 1}.hook_resid_post"]
    resid = final + head_write(random_model, corrupt, 1, 2) - head_write(random_model, clean, 1, 2)
    with torch.no_grad():
        expected = task.metric(random_model.unembed(random_model.ln_final(resid)))
    result = path_patch(random_model, task, senders=["L1H2"], receivers="logits", **RAW)
    assert float(result.values[0]) == pytest.approx(float(expected), abs=1e-4)


@pytest.mark.parametrize("letter", ["q", "k", "v"])
def test_two_layer_sender_into_a_receiver_input_matches_the_hand_computation(attn_only_model, attn_task, letter):
    """Sender L0H1 -> receiver L1H2's q/k/v: recompute ln1 and the projection of
    (clean resid_pre1 + the sender's corrupt - clean write), patch it into the clean run, read the metric."""
    model, task = attn_only_model, attn_task
    clean, corrupt = caches(model, task)
    attn = model.blocks[1].attn
    weight, bias = getattr(attn, f"W_{letter.upper()}")[2], getattr(attn, f"b_{letter.upper()}")[2]
    resid = clean["blocks.1.hook_resid_pre"] + head_write(model, corrupt, 0, 1) - head_write(model, clean, 0, 1)
    with torch.no_grad():
        projected = model.blocks[1].ln1(resid) @ weight + bias
        recomputed_clean = model.blocks[1].ln1(clean["blocks.1.hook_resid_pre"]) @ weight + bias
    torch.testing.assert_close(recomputed_clean, clean[f"blocks.1.attn.hook_{letter}"][:, :, 2], atol=1e-5, rtol=1e-5)

    def set_head(act, hook):
        act = act.clone()
        act[:, :, 2] = projected
        return act

    with torch.no_grad():
        logits = run_hooked(model, task.clean_tokens, [(f"blocks.1.attn.hook_{letter}", set_head)])
    result = path_patch(model, task, senders=["L0H1"], receivers=f"L1H2.{letter}", **RAW)
    assert float(result.values[0]) == pytest.approx(float(task.metric(logits)), abs=1e-4)


def test_sender_into_a_residual_point_adds_only_its_direct_write_there(random_model, task):
    clean, corrupt = caches(random_model, task)
    resid = clean["blocks.2.hook_resid_pre"] + head_write(random_model, corrupt, 0, 1) - head_write(random_model, clean, 0, 1)
    with torch.no_grad():
        logits = run_hooked(random_model, task.clean_tokens, [("blocks.2.hook_resid_pre", lambda act, hook: resid)])
    result = path_patch(random_model, task, senders=[(0, 1)], receivers="resid_pre2", **RAW)
    assert float(result.values[0]) == pytest.approx(float(task.metric(logits)), abs=1e-4)


def test_sweep_cells_equal_single_runs_and_downstream_senders_are_nan(random_model, task):
    sweep = path_patch(random_model, task, senders="heads", receivers=["L3H1.q", "L3H0.v"], **RAW)
    single = path_patch(random_model, task, senders=["L1H2", ["L0H0", "L2H3"]], receivers=["L3H1.q", "L3H0.v"], **RAW)
    assert sweep.values.shape == (4, 4) and sweep.axes == ("layer", "head")
    assert torch.isnan(sweep.values[3]).all() and not torch.isnan(sweep.values[:3]).any()
    assert float(single.values[0]) == pytest.approx(float(sweep.values[1, 2]), abs=1e-4)
    assert single.labels["sender"] == ["L1H2", "L0H0 + L2H3"]
    assert [c.label for c in single.components(1)] == ["L0H0", "L2H3"]


def test_normalized_path_patching_uses_the_clean_corrupt_scale(random_model, task):
    raw = path_patch(random_model, task, senders="mlps", receivers="logits", **RAW)
    norm = path_patch(random_model, task, senders="mlps", receivers="logits", progress=False)
    torch.testing.assert_close(norm.values, (raw.values - raw.corrupt_metric) / (raw.clean_metric - raw.corrupt_metric))


def test_intervening_on_a_path_cell_patches_the_senders_whole_output(random_model, task):
    sweep = path_patch(random_model, task, senders="heads", receivers="logits", **RAW)
    act = activation_patch(random_model, task, site="z", by="head", patch_into="clean", **RAW)
    outcome = sweep.intervene([(2, 1)])
    assert outcome.base == "clean" and outcome.metric_after == pytest.approx(float(act.values[2, 1]), abs=1e-4)


def test_bad_senders_and_receivers_raise_clear_errors(random_model, task):
    with pytest.raises(ValueError, match="not upstream of the receivers"):
        path_patch(random_model, task, senders=["L3H0"], receivers="L2H1.q", **RAW)
    with pytest.raises(ValueError, match="neither a head"):
        path_patch(random_model, task, senders=["resid_pre1"], **RAW)
    with pytest.raises(ValueError, match="Receiver L1N3 must be a whole head input"):
        path_patch(random_model, task, senders=["L0H0"], receivers="L1N3", **RAW)
    with pytest.raises(ValueError, match="head 7 is out of range"):
        path_patch(random_model, task, senders=["L0H7"], **RAW)
    with pytest.raises(ValueError, match="do not combine"):
        path_patch(random_model, task, senders=["L0H0"], receivers=["logits", "mlp2"], **RAW)
    with pytest.raises(ValueError, match="'noising' is now patch_into='clean'"):
        path_patch(random_model, task, patch_into="noising", **RAW)
    with pytest.raises(TypeError, match="positional"):
        path_patch(random_model, task, "heads")
    assert count_hooks(random_model) == 0
