"""TrainingMonitor: it keeps every step that SAE training reports (the trainer's own numbers, recorded here by a
second callback), sends the view a bounded number of updates, shows how a run ended (finished, or interrupted with
the checkpoint training kept), and refuses bad input with a message that names the fix."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.sae import train_on_activations
from interpwidgets.sae.trainer import CHECKPOINT_FILE, Trainer
from interpwidgets.widgets import TrainingMonitor
from interpwidgets.widgets.training_monitor import KEYS, MAX_POINTS

SMALL = dict(architecture="relu", d_sae=32, batch_size=64, buffer_tokens=256, checkpoint_every=5, progress=False)

pytestmark = pytest.mark.usefixtures("one_thread")


def data(n=2048, d=8, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def both(*callbacks):
    def call(event):
        for callback in callbacks:
            callback(event)
    return call


def pushes(monitor):
    sent = []
    monitor.observe(lambda change: sent.append(change["new"]), "runs")
    return sent


def test_curves_hold_every_step_the_trainer_reported_and_the_view_gets_the_last():
    """30 steps: monitor.curves equals the step events another callback recorded, metric by metric; the view's last
    update is 'finished after 30 steps' and ends on step 30 with the trainer's last values."""
    monitor, events = TrainingMonitor(every=0), []
    train_on_activations(data(), total_tokens=64 * 30, callback=both(events.append, monitor.track("relu")), **SMALL)
    steps = [e for e in events if e["event"] == "step"]
    curves = monitor.curves("relu")
    assert curves["step"] == list(range(1, 31))
    for key in KEYS:
        assert curves[key] == pytest.approx([e[key] for e in steps], rel=0, abs=0)
    (run,) = monitor.runs
    assert run["status"] == "finished" and run["text"] == "finished after 30 steps"
    assert run["points"]["step"][-1] == 30 and run["points"]["loss"][-1] == steps[-1]["loss"]
    assert monitor.status("relu") == "finished"


def test_updates_to_the_view_are_throttled_but_the_last_step_and_the_end_always_go():
    """With every=1 hour, 40 steps cause four view updates: the new run, its first step, its last step, the end."""
    monitor = TrainingMonitor(every=3600)
    sent = pushes(monitor)
    train_on_activations(data(), total_tokens=64 * 40, callback=monitor.track("relu"), **SMALL)
    assert [runs[0]["step"] for runs in sent] == [0, 1, 40, 40]
    assert [runs[0]["status"] for runs in sent] == ["running", "running", "running", "finished"]
    assert len(monitor.curves("relu")["step"]) == 40


def test_interrupted_run_shows_the_step_reached_and_the_checkpoint_training_kept(tmp_path, ctrl_c_at_step):
    """Ctrl-C in step 13 (checkpoint every 5 steps): the run reads 'interrupted at step 12; checkpoint kept: <path>', and
    that file holds step 10; the interrupt still reaches the caller."""
    ctrl_c_at_step(12)
    monitor = TrainingMonitor(every=0)
    with pytest.raises(KeyboardInterrupt):
        train_on_activations(data(), total_tokens=64 * 20, checkpoint_dir=tmp_path, callback=monitor.track("relu"), **SMALL)
    (run,) = monitor.runs
    kept = str(tmp_path / CHECKPOINT_FILE)
    assert run["status"] == "interrupted" and run["checkpoint"] == kept
    assert run["text"] == f"interrupted at step 12; checkpoint kept: {kept}"
    assert Trainer.from_checkpoint(tmp_path).step_count == 10
    assert "interrupted at step 12" in monitor._repr_mimebundle_()[0]["text/html"]


def test_two_runs_are_two_lines_and_tracking_a_name_again_starts_it_over():
    """Two architectures on the same data: two runs in start order; a second track('relu') empties its curves."""
    monitor = TrainingMonitor(every=0)
    train_on_activations(data(), total_tokens=64 * 10, callback=monitor.track("relu"), **SMALL)
    train_on_activations(data(), total_tokens=64 * 10, callback=monitor.track("topk"), **{**SMALL, "architecture": "topk", "k": 4})
    assert monitor.names == ["relu", "topk"] and [r["name"] for r in monitor.runs] == ["relu", "topk"]
    assert max(monitor.curves("topk")["l0"]) <= 4
    monitor.track("relu")
    assert monitor.curves("relu")["step"] == [] and monitor.status("relu") == "running"


def test_a_long_run_is_thinned_for_the_view_to_evenly_spaced_steps_ending_on_the_last():
    """1000 reported steps reach the view as at most MAX_POINTS points, first and last steps included."""
    monitor = TrainingMonitor(every=3600)
    callback = monitor.track("long")
    for step in range(1, 1001):
        callback({"event": "step", "step": step, "steps": 1000, "tokens": step, "loss": 1 / step, "l0": 3.0,
                  "explained_variance": float("nan"), "dead_fraction": 0.0})
    shown = monitor.runs[0]["points"]
    assert len(shown["step"]) <= MAX_POINTS and shown["step"][0] == 1 and shown["step"][-1] == 1000
    assert shown["loss"][-1] == pytest.approx(1e-3) and set(shown["explained_variance"]) == {None}


def test_bad_input_is_refused_with_the_fix():
    """An empty run name, a negative interval, an event that is not training's, an unknown end status, an unknown
    run: each a clear error; the monitor is unchanged."""
    monitor = TrainingMonitor()
    with pytest.raises(ValueError, match="non-empty name"):
        monitor.track("  ")
    with pytest.raises(ValueError, match="every must be"):
        TrainingMonitor(every=-1)
    callback = monitor.track("a")
    with pytest.raises(TypeError, match="event 'step' or 'end'"):
        callback({"loss": 1.0})
    with pytest.raises(ValueError, match="Unknown end status"):
        callback({"event": "end", "status": "done", "step": 0})
    with pytest.raises(KeyError, match="tracked runs: \\['a'\\]"):
        monitor.curves("b")
    assert monitor.status("a") == "running" and monitor.curves("a")["step"] == []


def test_callback_is_accepted_by_training_and_named_for_the_user():
    """iw.sae.train's callback check accepts what track() returns; its name says which run it feeds."""
    callback = TrainingMonitor().track("topk")
    assert callable(callback) and callback.__name__ == "track('topk')"


def test_the_browser_can_neither_ask_nor_change_anything():
    """No request is answered but with an error, no trait update is taken (the fuzz test's contract, for a view with
    no input): the runs shown stay exactly what training reported."""
    monitor = TrainingMonitor(every=0)
    callback = monitor.track("relu")
    callback({"event": "step", "step": 1, "steps": 2, "tokens": 64, "loss": 0.5, "l0": 3.0, "explained_variance": 0.9,
              "dead_fraction": 0.0})
    before = monitor.trait_values()
    sent = []
    monitor.send = lambda content, buffers=None: sent.append(content)
    for message in ({"id": "1", "method": "runs", "params": {}}, {"id": "2"}, "garbage", None, {"method": "x" * 10_000}):
        reply, buffers = monitor.handle_message(message)
        assert reply.get("error") and buffers == [] and "Traceback" not in reply["error"]
    for update in ({"runs": []}, {"metrics": []}, {"title": "hacked"}, {"every": 0.0}):
        monitor.set_state(update)
    assert monitor.trait_values() == before
    assert len(sent) >= 4 and all("rejected update" in m.get("error", "") for m in sent[:4])
