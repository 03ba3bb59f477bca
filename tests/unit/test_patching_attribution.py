"""Attribution patching: the gradient estimate against TransformerLens's attribution patching and a
finite difference, integrated gradients against exact whole-layer patching, and the correlation
with exact activation patching on the trained teaching model."""

from __future__ import annotations

import pytest
import torch
from transformer_lens.tools.analysis.attribution_patching import Node
from transformer_lens.tools.analysis.attribution_patching import attribution_patch as tl_attribution_patch

from interpwidgets.interventions import count_hooks, run_hooked
from interpwidgets.patching import activation_patch, attribution_patch
from interpwidgets.tasks import ioi

RAW = dict(normalize=False, progress=False)


@pytest.fixture(scope="module")
def task(random_model):
    return ioi(random_model, n=2, seed=0)


def test_atp_estimates_equal_transformer_lens_attribution_patching_node_scores(random_model, task):
    """TL scores (clean - corrupt) . d(metric)/d(activation) on the corrupt run, per node, for one prompt."""
    one = task.subset([0])
    tl = tl_attribution_patch(random_model, one.clean_tokens, one.corrupt_tokens, one.metric).node_scores
    heads = attribution_patch(random_model, one, site="z", by="head_position", **RAW)
    mlps = attribution_patch(random_model, one, site="mlp_out", by="position", **RAW)
    n_layers, n_heads, seq = heads.values.shape
    ours_heads = heads.values - heads.corrupt_metric
    ref_heads = torch.tensor([[[tl[Node("attn_head_out", p, L, h)] for p in range(seq)] for h in range(n_heads)] for L in range(n_layers)])
    ref_mlps = torch.tensor([[tl[Node("mlp_out", p, L)] for p in range(seq)] for L in range(n_layers)])
    torch.testing.assert_close(ours_heads, ref_heads, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(mlps.values - mlps.corrupt_metric, ref_mlps, atol=1e-4, rtol=1e-3)


def test_atp_estimate_of_a_cell_equals_a_central_finite_difference(random_model, task):
    """d/de metric(corrupt run with e * (clean - corrupt) added to L1H2's z at position 5), at e = 0."""
    with torch.no_grad():
        _, clean = random_model.run_with_cache(task.clean_tokens)
        _, corrupt = random_model.run_with_cache(task.corrupt_tokens)
    name = "blocks.1.attn.hook_z"
    delta = clean[name][:, 5, 2] - corrupt[name][:, 5, 2]

    def metric_at(eps: float) -> float:
        def nudge(act, hook):
            act = act.clone()
            act[:, 5, 2] += eps * delta
            return act

        with torch.no_grad():
            return float(task.metric(run_hooked(random_model, task.corrupt_tokens, [(name, nudge)])))

    eps = 1e-2
    slope = (metric_at(eps) - metric_at(-eps)) / (2 * eps)
    result = attribution_patch(random_model, task, site="z", by="head_position", **RAW)
    assert float(result.values[1, 2, 5]) - result.corrupt_metric == pytest.approx(slope, abs=2e-4)


@pytest.mark.parametrize("patch_into", ["corrupt", "clean"])
def test_integrated_gradients_summed_over_a_layer_converge_to_patching_the_whole_layer(random_model, task, patch_into):
    """Completeness: summed over every head and position of a layer, IG's estimates approach the exact
    effect of patching the layer's whole attention output (z of all heads <=> attn_out)."""
    ig = attribution_patch(random_model, task, site="z", by="head", method="ig", steps=16, patch_into=patch_into, **RAW)
    exact = activation_patch(random_model, task, site="attn_out", by="layer", patch_into=patch_into, **RAW)
    base = ig.corrupt_metric if patch_into == "corrupt" else ig.clean_metric
    estimated = (ig.values - base).sum(dim=1)
    torch.testing.assert_close(estimated, exact.values - base, atol=2e-3, rtol=1e-2)


def test_residual_mid_gradients_include_the_skip_connection(random_model, task):
    """IG at resid_mid over a whole layer must reproduce patching that layer's whole resid_mid."""
    ig = attribution_patch(random_model, task, site="resid_mid", by="layer", method="ig", steps=16, **RAW)
    exact = activation_patch(random_model, task, site="resid_mid", by="layer", **RAW)
    torch.testing.assert_close(ig.values, exact.values, atol=2e-3, rtol=1e-2)


def test_attribution_leaves_parameter_gradients_and_hooks_untouched(random_model, task):
    attribution_patch(random_model, task, site="pattern", by="head_position", method="ig", steps=2, **RAW)
    assert all(p.grad is None for p in random_model.parameters())
    assert count_hooks(random_model) == 0


def test_bad_method_and_steps_are_rejected(random_model, task):
    with pytest.raises(ValueError, match=r"method must be one of \('atp', 'ig'\)"):
        attribution_patch(random_model, task, method="shap")
    with pytest.raises(ValueError, match="'grad' is now called 'atp'"):
        attribution_patch(random_model, task, method="grad")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        attribution_patch(random_model, task, method="ig", steps=0)


def test_ig_with_one_step_is_the_gradient_at_the_midpoint_of_the_interpolation(random_model, task):
    """steps=1 evaluates the gradient once, at alpha = 1/2 (the midpoint rule) of the whole layer's interpolation
    (every head and position of the hook half way from corrupt to clean at once): (a_clean - a_corrupt) . dm/da at
    one cell there, checked by a central difference that moves that cell alone about the midpoint."""
    name = "blocks.1.attn.hook_z"
    with torch.no_grad():
        clean = random_model.run_with_cache(task.clean_tokens, names_filter=[name])[1][name]
        corrupt = random_model.run_with_cache(task.corrupt_tokens, names_filter=[name])[1][name]
    delta = clean - corrupt  # [batch, position, head, d_head]

    def metric_at(alpha: float) -> float:
        def move(act, hook):
            act = act + 0.5 * delta
            act[:, 5, 2] += (alpha - 0.5) * delta[:, 5, 2]
            return act

        with torch.no_grad():
            return float(task.metric(run_hooked(random_model, task.corrupt_tokens, [(name, move)])))

    eps = 1e-2
    slope = (metric_at(0.5 + eps) - metric_at(0.5 - eps)) / (2 * eps)
    result = attribution_patch(random_model, task, site="z", by="head_position", method="ig", steps=1, **RAW)
    assert float(result.values[1, 2, 5]) - result.corrupt_metric == pytest.approx(slope, abs=2e-4)


def test_a_metric_without_a_gradient_is_refused_with_a_clear_error(random_model, task):
    with pytest.raises(ValueError, match="not differentiable"):
        attribution_patch(random_model, task, metric=lambda logits: (logits[:, -1].argmax(-1) == 3).float().mean(), **RAW)


def test_head_attributions_correlate_with_exact_patching_on_the_trained_model(teaching_model, capsys):
    """Pearson r between attribution and exact activation patching of head outputs on IOI (target >= 0.9 for IG)."""
    task = ioi(teaching_model, n=16, seed=0)
    exact = activation_patch(teaching_model, task, site="z", by="head", progress=False).values.flatten()
    found = {}
    for method in ("atp", "ig"):
        estimate = attribution_patch(teaching_model, task, site="z", by="head", method=method, progress=False).values.flatten()
        found[method] = float(torch.corrcoef(torch.stack([estimate, exact]))[0, 1])
    with capsys.disabled():
        print(f"\nPearson r with exact head patching (IOI, n=16): atp {found['atp']:.3f}, ig {found['ig']:.3f}")
    assert found["ig"] >= 0.9
