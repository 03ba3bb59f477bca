"""Splicing: with the error term the model's outputs are unchanged; without it, the reconstruction is what flows on."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.sae import SAEConfig, SAESet, build_sae, spliced


@pytest.fixture(scope="module")
def dictionaries():
    return SAESet.of([
        build_sae(SAEConfig(128, 256, "topk", "blocks.1.hook_resid_post", k=16), seed=0),
        build_sae(SAEConfig(128, 256, "jumprelu", "blocks.0.hook_attn_out"), seed=1),
        build_sae(SAEConfig(128, 256, "relu", "blocks.2.ln2.hook_normalized", hook_name_out="blocks.2.hook_mlp_out"), seed=2),
        build_sae(SAEConfig(128, 256, "gated", "blocks.3.attn.hook_z"), seed=3),  # per-head hook, flattened
    ])


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(1, 700, (2, 24), generator=torch.Generator().manual_seed(0))


def test_error_term_reproduces_clean_logits(random_model, dictionaries, tokens):
    clean = random_model(tokens)
    with spliced(random_model, dictionaries, error_term=True) as run:
        logits = random_model(tokens)
    torch.testing.assert_close(logits, clean, rtol=1e-5, atol=1e-4)
    assert set(run.features) == set(dictionaries) and run.features["blocks.1.hook_resid_post"].shape == (2, 24, 256)
    assert run.errors["blocks.2.ln2.hook_normalized"].shape == (2, 24, 128)


def test_hooks_are_removed_after_the_block(random_model, dictionaries, tokens):
    clean = random_model(tokens)
    with pytest.raises(RuntimeError, match="boom"), spliced(random_model, dictionaries, error_term=False):
        raise RuntimeError("boom")
    assert torch.equal(random_model(tokens), clean)


def test_without_error_term_the_residual_stream_is_the_reconstruction(random_model, tokens):
    sae = build_sae(SAEConfig(128, 256, "topk", "blocks.1.hook_resid_post", k=16), seed=0)
    _, cache = random_model.run_with_cache(tokens, names_filter=["blocks.1.hook_resid_post"])
    expected = sae(cache["blocks.1.hook_resid_post"])
    with spliced(random_model, sae, error_term=False):
        _, spliced_cache = random_model.run_with_cache(tokens, names_filter=["blocks.2.hook_resid_pre"])
    torch.testing.assert_close(spliced_cache["blocks.2.hook_resid_pre"], expected)


def test_transcoder_replaces_the_mlp_output_with_its_prediction_from_the_mlp_input(random_model, tokens):
    tc = build_sae(SAEConfig(128, 256, "relu", "blocks.2.ln2.hook_normalized", hook_name_out="blocks.2.hook_mlp_out"), seed=2)
    _, cache = random_model.run_with_cache(tokens, names_filter=["blocks.2.ln2.hook_normalized"])
    expected = tc(cache["blocks.2.ln2.hook_normalized"])
    with spliced(random_model, tc, error_term=False):
        _, out = random_model.run_with_cache(tokens, names_filter=["blocks.2.hook_mlp_out"])
    torch.testing.assert_close(out["blocks.2.hook_mlp_out"], expected)


def test_gradients_reach_features_and_the_model_sees_clean_gradients(random_model, dictionaries, tokens):
    """With the error term: d out/d f = W_dec (features get gradients), and the embedding's gradient is the clean one."""
    def embed_grad(splice: bool):
        random_model.zero_grad(set_to_none=True)
        if splice:
            with spliced(random_model, dictionaries, error_term=True) as run:
                logits = random_model(tokens)
                for f in [*run.features.values(), *run.errors.values()]:
                    f.retain_grad()
                logits[:, -1].logsumexp(-1).sum().backward()
        else:
            random_model(tokens)[:, -1].logsumexp(-1).sum().backward()
            run = None
        grad = random_model.embed.W_E.grad.clone()
        random_model.zero_grad(set_to_none=True)
        return grad, run

    clean_grad, _ = embed_grad(False)
    spliced_grad, run = embed_grad(True)
    torch.testing.assert_close(spliced_grad, clean_grad, rtol=1e-4, atol=1e-6)
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in run.features.values())
    resid = run.errors["blocks.1.hook_resid_post"]
    # the feature gradient is the error node's gradient pulled back through the decoder
    torch.testing.assert_close(run.features["blocks.1.hook_resid_post"].grad, resid.grad @ dictionaries["blocks.1.hook_resid_post"].W_dec.T)


def test_two_dictionaries_writing_one_hook_are_refused(random_model):
    a = build_sae(SAEConfig(128, 64, "relu", "blocks.0.hook_mlp_out"))
    b = build_sae(SAEConfig(128, 64, "relu", "blocks.0.ln2.hook_normalized", hook_name_out="blocks.0.hook_mlp_out"))
    with pytest.raises(ValueError, match="Two dictionaries write 'blocks.0.hook_mlp_out'"), spliced(random_model, [a, b]):
        pass


def test_wrong_width_sae_is_refused_with_the_fix(random_model, tokens):
    sae = build_sae(SAEConfig(64, 128, "relu", "blocks.0.hook_resid_post"))
    with pytest.raises(ValueError, match="d_in matches the hook"), spliced(random_model, sae):
        random_model(tokens)
