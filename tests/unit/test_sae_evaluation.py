"""evaluate() on dictionaries whose answers are known exactly."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from interpwidgets.sae import SAEConfig, activation_frequency_histogram, build_sae, evaluate

matplotlib.use("Agg")
TOKENS = dict(n_batches=1, batch_size=4, context_size=32)


def exact_sae(hook="blocks.1.hook_resid_post"):
    """ReLU SAE with W_enc = [I, -I], W_dec = [I; -I]: relu(x) - relu(-x) == x, a perfect reconstruction."""
    sae = build_sae(SAEConfig(128, 256, "relu", hook))
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([torch.eye(128), -torch.eye(128)], 1))
        sae.W_dec.copy_(torch.cat([torch.eye(128), -torch.eye(128)], 0))
    return sae


def test_perfect_reconstruction_recovers_all_ce_loss(random_model):
    stats = evaluate(random_model, exact_sae(), **TOKENS)
    assert stats["ce_loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    assert stats["explained_variance"] == pytest.approx(1.0, abs=1e-5) and stats["mse"] < 1e-9
    assert stats["ce_loss_with_sae"] == pytest.approx(stats["ce_loss_clean"], abs=1e-4)
    assert stats["n_tokens"] == 4 * 32


def test_zero_output_recovers_no_ce_loss_and_every_latent_is_dead(random_model):
    sae = build_sae(SAEConfig(128, 64, "relu", "blocks.1.hook_resid_post"))
    with torch.no_grad():
        sae.W_dec.zero_()
        sae.b_enc.fill_(-1e6)  # nothing ever fires
    stats = evaluate(random_model, sae, **TOKENS)
    assert stats["ce_loss_recovered"] == pytest.approx(0.0, abs=1e-6)
    assert stats["l0"] == 0 and stats["dead_fraction"] == 1.0 and stats["dense_fraction"] == 0.0


def test_l0_and_density_count_active_latents(random_model):
    stats = evaluate(random_model, exact_sae(), **TOKENS)
    # exactly one of each (x_i, -x_i) pair is positive unless x_i == 0
    assert stats["l0"] == pytest.approx(128, abs=0.5)
    assert stats["feature_frequency"].shape == (256,)
    torch.testing.assert_close(stats["feature_frequency"][:128] + stats["feature_frequency"][128:], torch.ones(128))


def test_transcoder_is_evaluated_against_its_output_hook(random_model):
    tc = build_sae(SAEConfig(128, 64, "relu", "blocks.1.ln2.hook_normalized", hook_name_out="blocks.1.hook_mlp_out"), seed=0)
    stats = evaluate(random_model, tc, **TOKENS)
    assert stats["ce_loss_zero_ablation"] != stats["ce_loss_clean"]
    assert stats["explained_variance"] < 0.5  # untrained


def test_frequency_histogram_draws(random_model):
    fig = activation_frequency_histogram(torch.tensor([0.0, 0.001, 0.01, 0.5]))
    assert "1 dead" in fig.axes[0].get_title()
