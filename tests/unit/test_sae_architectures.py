"""Each architecture implements the shared dictionary interface with the documented algebra."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.sae import ARCHITECTURES, SAE, SAEConfig, build_sae


def perturbed(architecture: str, transcoder: bool = False, seed: int = 0):
    """A small dictionary with every parameter moved off its initial value (so biases matter)."""
    cfg = SAEConfig(
        d_in=8, d_sae=32, architecture=architecture, k=4 if architecture in ("topk", "batchtopk") else None,
        hook_name="blocks.0.ln2.hook_normalized" if transcoder else "blocks.0.hook_resid_post",
        hook_name_out="blocks.0.hook_mlp_out" if transcoder else None, d_out=6 if transcoder else None,
    )
    sae = build_sae(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
            if p is getattr(sae, "threshold", None):
                p.abs_()
    return sae


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("transcoder", [False, True])
def test_shapes_and_decode_is_affine(architecture, transcoder):
    sae = perturbed(architecture, transcoder)
    d_out = 6 if transcoder else 8
    assert sae.W_enc.shape == (8, 32) and sae.W_dec.shape == (32, d_out)
    assert sae.b_enc.shape == (32,) and sae.b_dec.shape == (d_out,)
    x = torch.randn(3, 5, 8)
    f = sae.encode(x)
    assert f.shape == (3, 5, 32) and sae(x).shape == (3, 5, d_out)
    torch.testing.assert_close(sae.decode(f), f @ sae.W_dec + sae.b_dec)
    assert sae.is_transcoder == transcoder


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_active_features_equal_their_pre_activations(architecture):
    """f == (f != 0) * encode_pre(x): on the active set the encoder is affine (what circuits rely on)."""
    sae = perturbed(architecture)
    x = torch.randn(64, 8)
    f = sae.encode(x)
    assert (f != 0).any(), "test needs some active features"
    assert (f >= 0).all()
    torch.testing.assert_close(f, (f != 0) * sae.encode_pre(x))


@pytest.mark.parametrize("architecture", [a for a in ARCHITECTURES if a != "gated"])
def test_b_dec_is_subtracted_from_sae_input_but_not_transcoder_input(architecture):
    sae = perturbed(architecture)
    x = torch.randn(4, 8)
    torch.testing.assert_close(sae.encode_pre(x), (x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    tc = perturbed(architecture, transcoder=True)
    torch.testing.assert_close(tc.encode_pre(x), x @ tc.W_enc + tc.b_enc)


def test_topk_keeps_exactly_k_positive_latents_per_token():
    sae = perturbed("topk")
    with torch.no_grad():
        sae.b_enc.fill_(10.0)  # every pre-activation positive: exactly k survive
    f = sae.encode(torch.randn(16, 8))
    assert (f.ne(0).sum(-1) == 4).all()


def test_batchtopk_training_keeps_k_per_token_on_average_and_inference_uses_threshold():
    sae = perturbed("batchtopk")
    with torch.no_grad():
        sae.threshold.zero_()  # as built: the moving average starts at 0
    x = torch.randn(50, 8)
    out = sae.training_outputs(x, x, 0.0)
    assert out["feature_acts"].ne(0).sum() <= 4 * 50
    assert sae.threshold.min() == sae.threshold.max() and sae.threshold[0] > 0
    pre = sae.encode_pre(x)
    torch.testing.assert_close(sae.encode(x), pre * (pre > sae.threshold))


def test_gated_gate_decides_and_magnitude_path_sets_value():
    sae = perturbed("gated")
    x = torch.randn(32, 8)
    expected = (sae.gate_pre(x) > 0) * torch.relu(sae.encode_pre(x))
    torch.testing.assert_close(sae.encode(x), expected)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_fold_scale_makes_scaled_training_act_on_raw_inputs(architecture):
    """A dictionary trained on x*s reconstructs y*s; after folding it maps raw x to raw y, same features."""
    sae = perturbed(architecture)
    x = torch.randn(16, 8)
    s = 3.7
    f_scaled, y_scaled = sae.encode(x * s), sae(x * s)
    sae.fold_input_output_scale(s, s)
    torch.testing.assert_close(sae.encode(x), f_scaled)
    torch.testing.assert_close(sae(x), y_scaled / s)


def test_jumprelu_threshold_receives_gradient_from_l0_penalty():
    sae = perturbed("jumprelu")
    with torch.no_grad():
        sae.threshold.fill_(0.05)
    x = torch.randn(256, 8)
    out = sae.training_outputs(x, x, 1.0)
    out["sparsity_loss"].backward()
    assert sae.threshold.grad is not None and (sae.threshold.grad < 0).any()  # raising thresholds lowers L0


@pytest.mark.parametrize("bad", [
    dict(architecture="softmax"), dict(d_sae=0), dict(architecture="topk", k=None), dict(architecture="topk", k=99),
    dict(d_out=5), dict(hook_name_out="blocks.0.hook_mlp_out", apply_b_dec_to_input=True),
])
def test_invalid_configs_are_rejected_with_a_message(bad):
    with pytest.raises(ValueError, match=r"."):
        SAEConfig(**{"d_in": 8, "d_sae": 16, **bad})


def test_batchtopk_calibration_gives_mean_l0_k_on_the_calibration_inputs():
    sae = perturbed("batchtopk")
    x = torch.randn(500, 8)
    sae.calibrate_threshold(x)
    assert (sae.encode(x) != 0).sum(-1).float().mean().item() == pytest.approx(4.0, abs=0.01)


# ---- the registry: each architecture is one class, found by its own name ---------------------------
def test_registry_names_come_from_the_classes_and_base_knows_none_of_them():
    import interpwidgets.sae.base as base
    from interpwidgets.sae import architectures

    assert ARCHITECTURES == tuple(cls.architecture for cls in architectures.classes())
    assert all(architectures.sae_class(name).architecture == name for name in ARCHITECTURES)
    source = open(base.__file__).read()
    assert not [cls.__name__ for cls in architectures.classes() if cls.__name__ in source]
    assert not hasattr(base, "ARCHITECTURES") and not hasattr(base, "sae_class")


def test_unknown_architecture_is_refused_naming_the_valid_ones():
    from interpwidgets.sae.architectures import sae_class

    for attempt in (lambda: sae_class("softmax"), lambda: SAEConfig(d_in=8, d_sae=16, architecture="softmax")):
        with pytest.raises(ValueError, match="Unknown SAE architecture 'softmax'") as err:
            attempt()
        assert all(repr(name) in str(err.value) for name in ARCHITECTURES)


class ScaledReLUSAE(SAE):
    """A made-up architecture, defined only here: ReLU with a learned per-latent gain on the pre-activations.

    pre = ((x - b_dec) @ W_enc + b_enc) * exp(log_gain); f = relu(pre); L1 penalty on f.
    """

    architecture = "scaled_relu"
    default_sparsity = 0.5
    saelens_name = "scaled_standard"
    param_renames = {"log_gain": "gain_log"}
    resample_params = {"b_enc": "zero", "log_gain": "zero"}

    def __init__(self, cfg):
        super().__init__(cfg)
        self.log_gain = torch.nn.Parameter(torch.zeros(cfg.d_sae))  # [d_sae]

    def encode_pre(self, x):
        return super().encode_pre(x) * self.log_gain.exp()

    def activation(self, pre):
        return torch.relu(pre)

    def training_outputs(self, x, target, sparsity_coefficient):
        pre = self.encode_pre(x)
        f = torch.relu(pre)
        return {"feature_acts": f, "pre_acts": pre, "sparsity_loss": sparsity_coefficient * f.sum(-1).mean(),
                "aux_loss": pre.new_zeros(())}


@pytest.fixture
def scaled_relu_registered(monkeypatch):
    """ScaledReLUSAE registered for one test; the registry is restored afterwards."""
    from interpwidgets.sae import architectures

    monkeypatch.setattr(SAE, "implementations", dict(SAE.implementations))
    monkeypatch.setattr(architectures, "ARCHITECTURES", architectures.ARCHITECTURES)
    architectures.register(ScaledReLUSAE)
    return architectures


def test_a_new_architecture_is_one_class_build_train_save_load_need_no_other_edit(scaled_relu_registered, tmp_path):
    """Adding an architecture is one class (one file) and its registration: config checks, building,
    training (default sparsity, resampling of its own parameter), SAELens save and load all follow
    from the class attributes."""
    import json

    from safetensors.torch import load_file

    from interpwidgets.sae import load, save, train_on_activations
    from interpwidgets.sae.trainer import TrainConfig, Trainer

    assert scaled_relu_registered.ARCHITECTURES[-1] == "scaled_relu"
    with pytest.raises(ValueError, match="leave it None"):
        SAEConfig(d_in=8, d_sae=16, architecture="scaled_relu", k=3)
    cfg = SAEConfig(d_in=8, d_sae=16, architecture="scaled_relu", hook_name="blocks.0.hook_resid_post")
    assert isinstance(build_sae(cfg, seed=0), ScaledReLUSAE)

    # training: latents 0-7 start dead and are resampled at step 2, which zeroes their log_gain
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    train_cfg = TrainConfig(architecture="scaled_relu", d_sae=16, k=None, total_tokens=64 * 10, batch_size=64,
                            warmup_steps=1, resample_every=2, dead_after_tokens=64)
    assert train_cfg.coefficient == 0.5
    trainer = Trainer(cfg, train_cfg)
    with torch.no_grad():
        trainer.sae.log_gain.fill_(0.5)
        trainer.sae.b_enc[:8] = -100.0
    for _ in range(3):
        trainer.step(x, x)
    assert (trainer.sae.log_gain[:8] == 0).all() and (trainer.sae.b_enc[:8] == 0).all()
    assert (trainer.sae.log_gain[8:] != 0).all()

    sae = train_on_activations(torch.randn(2048, 8, generator=g), architecture="scaled_relu", d_sae=16,
                               hook_name="blocks.0.hook_resid_post", total_tokens=1024, batch_size=128,
                               buffer_tokens=256, progress=False)
    assert isinstance(sae, ScaledReLUSAE) and sae.cfg.k is None
    assert sae.cfg.metadata["training"]["steps_done"] == 8

    folder = save(sae, tmp_path / "scaled")
    saved = json.loads((folder / "cfg.json").read_text())
    assert saved["architecture"] == "scaled_standard" and saved["metadata"]["interpwidgets"]["architecture"] == "scaled_relu"
    assert "gain_log" in load_file(str(folder / "sae_weights.safetensors"))
    back = load(folder)
    assert isinstance(back, ScaledReLUSAE) and back.cfg == sae.cfg
    x = torch.randn(10, 8)
    assert torch.equal(back.encode(x), sae.encode(x)) and torch.equal(back(x), sae(x))


def test_register_refuses_a_taken_name_or_a_taken_saelens_name(scaled_relu_registered):
    class Again(ScaledReLUSAE):
        pass

    class ReadsJumpReLU(ScaledReLUSAE):
        architecture = "reads_jumprelu"
        saelens_name = "jumprelu"

    with pytest.raises(ValueError, match="already implemented by ScaledReLUSAE"):
        scaled_relu_registered.register(Again)
    with pytest.raises(ValueError, match="'jumprelu', which JumpReLUSAE reads already"):
        scaled_relu_registered.register(ReadsJumpReLU)
