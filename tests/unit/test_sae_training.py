"""Training mechanics: exact resume, Ctrl-C and NaN leave the last good checkpoint, data mixing, model sources."""

from __future__ import annotations

import itertools

import pytest
import torch

from interpwidgets.sae import SAEConfig, train, train_on_activations
from interpwidgets.sae.buffer import shuffled_batches
from interpwidgets.sae.trainer import CHECKPOINT_FILE, NonFiniteActivationsError, TrainConfig, Trainer

SMALL = dict(d_sae=32, batch_size=64, buffer_tokens=256, checkpoint_every=5, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # many small training steps


def data(n=4096, d=8, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_trainer_restored_from_checkpoint_continues_exactly(tmp_path):
    """Steps 1-10, checkpoint, reload, steps 11-20 == steps 1-20 without interruption (weights, Adam, schedule)."""
    cfg = TrainConfig(architecture="topk", d_sae=32, k=4, batch_size=64, total_tokens=64 * 20, warmup_steps=3,
                      dead_after_tokens=128)
    batches = data().split(64)[:20]
    a = Trainer(SAEConfig(d_in=8, d_sae=32, architecture="topk", k=4), cfg)
    for b in batches:
        a.step(b, b)
    b_ = Trainer(SAEConfig(d_in=8, d_sae=32, architecture="topk", k=4), cfg)
    for b in batches[:10]:
        b_.step(b, b)
    b_.save_checkpoint(tmp_path)
    c = Trainer.from_checkpoint(tmp_path)
    for b in batches[10:]:
        c.step(b, b)
    for (name, p), q in zip(a.sae.state_dict().items(), c.sae.state_dict().values()):
        assert torch.equal(p, q), name
    assert c.step_count == 20 and torch.equal(a.since_fired, c.since_fired)


def test_ctrl_c_keeps_last_checkpoint_and_resume_finishes(tmp_path, monkeypatch, ctrl_c_at_step):
    """Interrupted at step 12: the checkpoint on disk is the state at step 10 of an uninterrupted run; resuming finishes."""
    x = data()
    real_save, real_step = Trainer.save_checkpoint, Trainer.step
    at_10 = {}

    def recording_save(self, folder):
        if self.step_count == 10:
            at_10.update({k: v.clone() for k, v in self.sae.state_dict().items()})
        return real_save(self, folder)

    monkeypatch.setattr(Trainer, "save_checkpoint", recording_save)
    train_on_activations(x, architecture="relu", total_tokens=64 * 20, checkpoint_dir=tmp_path / "ref", **SMALL)
    monkeypatch.setattr(Trainer, "save_checkpoint", real_save)

    ctrl_c_at_step(12)
    with pytest.raises(KeyboardInterrupt):
        train_on_activations(x, architecture="relu", total_tokens=64 * 20, checkpoint_dir=tmp_path / "run", **SMALL)
    saved = Trainer.from_checkpoint(tmp_path / "run")
    assert saved.step_count == 10
    for name, value in saved.sae.state_dict().items():
        assert torch.equal(value, at_10[name]), name
    monkeypatch.setattr(Trainer, "step", real_step)
    resumed = train_on_activations(x, architecture="relu", total_tokens=64 * 20, checkpoint_dir=tmp_path / "run", **SMALL)
    assert resumed.cfg.metadata["training"]["steps_done"] == 20
    assert Trainer.from_checkpoint(tmp_path / "run").step_count == 20


def test_nan_in_activation_stream_stops_and_keeps_checkpoint(tmp_path):
    x = data()

    def stream():
        for i in range(40):
            chunk = x[i * 64:(i + 1) * 64].clone()
            if i == 25:
                chunk[3, 1] = float("nan")
            yield chunk

    with pytest.raises(NonFiniteActivationsError, match="last good checkpoint"):
        train_on_activations(stream(), architecture="topk", k=4, total_tokens=64 * 40, checkpoint_dir=tmp_path, **SMALL)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()
    step = Trainer.from_checkpoint(tmp_path).step_count
    assert 0 < step < 40 and step % 5 == 0
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before


def test_nan_in_activation_tensor_is_refused_before_anything_is_written(tmp_path):
    x = data()
    x[5, 5] = float("inf")
    with pytest.raises(NonFiniteActivationsError, match="NaN or inf"):
        train_on_activations(x, checkpoint_dir=tmp_path, **SMALL)
    assert not (tmp_path / CHECKPOINT_FILE).exists()


def test_resuming_with_different_settings_is_refused(tmp_path):
    x = data()
    train_on_activations(x, architecture="topk", k=4, total_tokens=64 * 5, checkpoint_dir=tmp_path, **SMALL)
    with pytest.raises(ValueError, match="different dictionary or training configuration"):
        train_on_activations(x, architecture="topk", k=8, total_tokens=64 * 5, checkpoint_dir=tmp_path, **SMALL)


def test_buffer_serves_every_row_once_and_mixes_contexts():
    rows = torch.arange(1000, dtype=torch.float32)[:, None]
    chunks = rows.split(100)  # ten "contexts" of 100 consecutive rows
    batches = list(shuffled_batches(iter(chunks), batch_size=50, capacity=400, generator=torch.Generator().manual_seed(0)))
    served = torch.cat(batches).squeeze(-1)
    assert len(served) == 1000 and torch.equal(served.sort().values, rows.squeeze(-1))
    contexts_per_batch = [len(set((b.squeeze(-1) // 100).long().tolist())) for b in batches]
    assert min(contexts_per_batch) >= 2 and sum(contexts_per_batch) / len(batches) > 2.5


def test_learning_rate_warms_up_holds_and_decays_to_zero():
    t = Trainer(SAEConfig(d_in=4, d_sae=8), TrainConfig(architecture="relu", total_tokens=100 * 10, batch_size=10,
                                                          lr=1.0, warmup_steps=10, decay_fraction=0.2))
    lrs = [t.learning_rate(s) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[50] == 1.0
    assert lrs[80] == pytest.approx(1.0) and lrs[99] == pytest.approx(0.05) and all(a >= b for a, b in zip(lrs[80:], lrs[81:]))


@pytest.mark.parametrize("max_grad_norm", [0.5, None])
def test_gradient_norm_reaching_adam_is_clipped_to_max_grad_norm(max_grad_norm):
    """Each step's gradient (global norm over all parameters) is clipped before Adam sees it, as in SAELens;
    with max_grad_norm=None the raw gradient, whose norm is far above 0.5 on this data, goes through."""
    cfg = TrainConfig(architecture="topk", d_sae=32, k=4, total_tokens=64 * 5, batch_size=64, max_grad_norm=max_grad_norm)
    t = Trainer(SAEConfig(d_in=8, d_sae=32, architecture="topk", k=4), cfg)
    seen = []
    t.opt.register_step_pre_hook(lambda opt, *_: seen.append(torch.cat([p.grad.flatten() for p in t.params]).norm().item()))
    for batch in data().split(64)[:5]:
        t.step(batch, batch)
    if max_grad_norm is None:
        assert min(seen) > 0.5
    else:
        assert max(seen) <= 0.5 + 1e-5 and max(seen) > 0.5 - 1e-3


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_non_positive_max_grad_norm_is_refused_with_the_fix(bad):
    """A zero, negative or NaN clipping norm would freeze or flip the updates: it is refused, naming None as the way to turn clipping off."""
    with pytest.raises(ValueError, match="max_grad_norm must be a positive number, or None"):
        train_on_activations(data(), architecture="topk", k=4, max_grad_norm=bad, **SMALL)


def test_decoder_rows_stay_unit_norm_for_topk_training():
    sae = train_on_activations(data(), architecture="topk", k=4, total_tokens=64 * 10, **SMALL)
    # the returned dictionary acts on raw activations: its rows are unit norm divided by the output scale
    norms = sae.W_dec.norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, norms[0].item()))


def test_train_from_model_and_corpus_reads_the_hook(random_model):
    sae = train(random_model, "blocks.0.hook_resid_post", architecture="topk", k=8, d_sae=64, total_tokens=4096,
                batch_size=512, buffer_tokens=1024, context_size=32, model_batch_size=8, progress=False)
    assert sae.cfg.hook_name == "blocks.0.hook_resid_post" and sae.cfg.d_in == 128
    assert sae.cfg.model_name == random_model.cfg.model_name


def test_train_transcoder_from_strings(random_model):
    texts = ["the cat sat on the mat ( and ) then left"] * 40
    tc = train(random_model, "blocks.1.ln2.hook_normalized", texts, hook_name_out="blocks.1.hook_mlp_out",
               architecture="relu", d_sae=64, total_tokens=1024, batch_size=128, buffer_tokens=256,
               context_size=16, model_batch_size=4, progress=False)
    assert tc.is_transcoder and tc.cfg.hook_name_out == "blocks.1.hook_mlp_out" and not tc.cfg.apply_b_dec_to_input


def test_unknown_hook_is_named_with_suggestions(random_model):
    with pytest.raises(ValueError, match="did you mean|Did you mean"):
        train(random_model, "blocks.0.hook_resid_pots", total_tokens=128, progress=False)


@pytest.mark.parametrize("architecture", ["topk", "relu"])
def test_dead_latents_are_revived(architecture):
    """Half the latents start dead (b_enc = -5); AuxK (topk) or resampling (relu) brings them back,
    and without it they stay dead."""
    from interpwidgets.sae.synthetic import make_sparse_features

    x, _ = make_sparse_features(16, 32, 2.0, seed=0).sample(40_000, torch.Generator().manual_seed(0))

    def alive_after(revive: bool) -> float:
        cfg = TrainConfig(architecture=architecture, d_sae=64, k=4 if architecture == "topk" else None, batch_size=256,
                          total_tokens=256 * 300, lr=3e-3, dead_after_tokens=2_000, resample_every=50,
                          aux_coefficient=1.0 if revive else 0.0)
        t = Trainer(SAEConfig(16, 64, architecture, k=cfg.k), cfg)
        if not revive:
            t._resample_due = lambda: False
        with torch.no_grad():
            t.sae.b_enc[32:] = -5.0
        for batch in itertools.islice(itertools.cycle(x.split(256)), 300):
            t.step(batch, batch)
        return (t.result().encode(x[:5000]) != 0).any(0)[32:].float().mean().item()

    assert alive_after(revive=False) < 0.2
    assert alive_after(revive=True) > 0.8


def test_context_size_longer_than_the_models_context_is_refused_and_the_default_is_shortened(tmp_path):
    """A GPT-2 reading 96 positions: an explicit context_size=128 would index past its position embedding."""
    import interpwidgets as iw
    from interpwidgets.models.families import save_random_family

    model = iw.load_model(str(save_random_family("gpt2", tmp_path, n_positions=96)), device="cpu")
    assert model.cfg.n_ctx == 96
    small = dict(architecture="topk", k=4, d_sae=32, total_tokens=256, batch_size=64, buffer_tokens=128,
                 model_batch_size=2, progress=False)
    with pytest.raises(ValueError, match=r"context_size=128 is longer than the model's context \(n_ctx=96\): pass context_size=96"):
        train(model, "blocks.0.hook_resid_post", context_size=128, **small)
    with pytest.raises(ValueError, match="at most n_ctx=96"):
        train(model, "blocks.0.hook_resid_post", torch.ones(2, 97, dtype=torch.long), **small)
    with pytest.warns(UserWarning, match="rows of 96 tokens are used"):
        sae = train(model, "blocks.0.hook_resid_post", **small)
    assert sae.cfg.metadata["training"]["steps_done"] == 4
