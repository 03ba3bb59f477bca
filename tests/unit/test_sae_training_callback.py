"""`callback=` on SAE training: one call per step with the trainer's own metrics, and one end event that says how
training ended (finished, Ctrl-C, non-finite activations, source ran out) and which checkpoint is kept."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.sae import train_on_activations
from interpwidgets.sae.trainer import CHECKPOINT_FILE, NonFiniteActivationsError, Trainer

SMALL = dict(architecture="relu", d_sae=32, batch_size=64, buffer_tokens=256, checkpoint_every=5, progress=False)

pytestmark = pytest.mark.usefixtures("one_thread")


def data(n=2048, d=8, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_callback_gets_every_step_with_the_trainers_metrics_then_finished(tmp_path, monkeypatch):
    """20 steps -> 20 step events numbered 1..20, tokens = step * batch_size, metrics equal to what Trainer.step
    returned; then one "finished" event naming the checkpoint file that exists on disk."""
    returned, real_step = [], Trainer.step

    def recording_step(self, x, y):
        metrics = real_step(self, x, y)
        returned.append(dict(metrics))
        return metrics

    monkeypatch.setattr(Trainer, "step", recording_step)
    events = []
    train_on_activations(data(), total_tokens=64 * 20, checkpoint_dir=tmp_path, callback=events.append, **SMALL)
    steps, (last,) = events[:-1], events[-1:]
    assert [e["event"] for e in steps] == ["step"] * 20
    assert [e["step"] for e in steps] == list(range(1, 21))
    assert [e["tokens"] for e in steps] == [64 * i for i in range(1, 21)]
    assert all(e["steps"] == 20 for e in steps)
    for event, metrics in zip(steps, returned, strict=True):
        assert {k: event[k] for k in metrics} == metrics
        assert set(metrics) >= {"loss", "l0", "mse", "explained_variance", "dead_fraction", "lr"}
    assert last["event"] == "end" and last["status"] == "finished" and last["step"] == 20
    assert last["checkpoint"] == str(tmp_path / CHECKPOINT_FILE) and (tmp_path / CHECKPOINT_FILE).exists()


def test_ctrl_c_tells_the_callback_then_propagates_and_the_checkpoint_is_the_last_complete_one(tmp_path, ctrl_c_at_step):
    """A KeyboardInterrupt in step 13: the callback saw steps 1-12 and "interrupted" at step 12 with the checkpoint;
    the interrupt still reaches the caller, and the checkpoint on disk holds step 10 (checkpoint_every=5)."""
    ctrl_c_at_step(12)
    events = []
    with pytest.raises(KeyboardInterrupt):
        train_on_activations(data(), total_tokens=64 * 20, checkpoint_dir=tmp_path, callback=events.append, **SMALL)
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, 13))
    assert events[-1] == {"event": "end", "status": "interrupted", "step": 12, "steps": 20, "tokens": 64 * 12,
                          "checkpoint": str(tmp_path / CHECKPOINT_FILE)}
    assert Trainer.from_checkpoint(tmp_path).step_count == 10


def test_ctrl_c_raised_by_the_callback_itself_still_ends_with_interrupted(tmp_path):
    """Ctrl-C while the callback runs (e.g. a view drawing) is reported as "interrupted" and propagates."""
    events = []

    def callback(event):
        events.append(event)
        if event["event"] == "step" and event["step"] == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_on_activations(data(), total_tokens=64 * 20, checkpoint_dir=tmp_path, callback=callback, **SMALL)
    assert events[-1]["status"] == "interrupted" and events[-1]["step"] == 7
    assert Trainer.from_checkpoint(tmp_path).step_count == 5


def test_non_finite_activations_end_with_non_finite_and_no_checkpoint_when_none_was_written():
    """NaN in the second chunk of an iterator (before any checkpoint): end event "non_finite", checkpoint None."""
    good, bad = data(256), data(256, seed=1)
    bad[3, 2] = float("nan")
    events = []
    with pytest.raises(NonFiniteActivationsError):
        train_on_activations(iter([good, bad, good, good]), total_tokens=64 * 20, callback=events.append,
                             **{**SMALL, "buffer_tokens": 128})
    assert events[-1]["event"] == "end" and events[-1]["status"] == "non_finite" and events[-1]["checkpoint"] is None


def test_a_source_that_runs_out_ends_with_source_exhausted():
    """An iterator of 4 batches for a 20-step run: 4 steps at most, then "source_exhausted" (and the usual warning)."""
    events = []
    with pytest.warns(UserWarning, match="ran out"):
        train_on_activations(iter(data(256).split(64)), total_tokens=64 * 20, callback=events.append, **SMALL)
    n_steps = sum(e["event"] == "step" for e in events)
    assert 1 <= n_steps <= 4
    assert events[-1]["status"] == "source_exhausted" and events[-1]["step"] == n_steps


def test_resuming_a_finished_run_reports_finished_without_steps(tmp_path):
    """A second call on a finished checkpoint trains nothing: only the end event, "finished" at the last step."""
    train_on_activations(data(), total_tokens=64 * 10, checkpoint_dir=tmp_path, **SMALL)
    events = []
    train_on_activations(data(), total_tokens=64 * 10, checkpoint_dir=tmp_path, callback=events.append, **SMALL)
    assert [(e["event"], e["status"], e["step"]) for e in events] == [("end", "finished", 10)]


def test_a_callback_that_is_not_callable_is_refused_before_training():
    with pytest.raises(TypeError, match="callback must be a function"):
        train_on_activations(data(), total_tokens=64 * 4, callback="monitor", **SMALL)
