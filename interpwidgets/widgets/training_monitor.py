"""`TrainingMonitor`: live curves of dictionary training (loss, L0, explained variance, dead fraction), a line per run.

    monitor = iw.widgets.TrainingMonitor()
    display(monitor)
    topk = iw.sae.train(model, hook, architecture="topk", callback=monitor.track("topk"))
    relu = iw.sae.train(model, hook, architecture="relu", callback=monitor.track("relu"))

`track(name)` returns the callback that `iw.sae.train` / `train_on_activations` call after every step and once at
the end (`interpwidgets.sae.training`). The callback keeps every step in Python (`monitor.curves(name)`) and sends
the view at most one update per `every` seconds, plus the last: the browser redraws while the training cell is still
running, and the loop never waits on the view. Interrupting the kernel stops training: the run shows "interrupted"
and the checkpoint that training kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from traitlets import Float, List, Unicode

from interpwidgets.widgets.base import STATIC, InterpWidget
from interpwidgets.widgets.static_html import esc, frame

#: what each step event carries that the view draws: key, label, units, y scale, fixed range (None: from the data)
METRICS: tuple[dict[str, Any], ...] = (
    {"key": "loss", "label": "loss", "units": "training objective, log scale", "scale": "log", "range": None},
    {"key": "l0", "label": "L0", "units": "active features per token", "scale": "linear", "range": None},
    {"key": "explained_variance", "label": "explained variance", "units": "fraction of variance", "scale": "linear",
     "range": [0.0, 1.0]},
    {"key": "dead_fraction", "label": "dead fraction", "units": "share of features not fired lately", "scale": "linear",
     "range": [0.0, 1.0]},
)
KEYS = tuple(metric["key"] for metric in METRICS)
END_STATUSES = {"finished", "interrupted", "non_finite", "source_exhausted"}
MAX_POINTS = 400
"""Points per run the view gets (evenly spaced steps, the last one always among them); Python keeps them all."""


class TrainingMonitor(InterpWidget):
    """Curves of each tracked training run; `track(name)` gives the callback for `iw.sae.train(callback=...)`.

    every: the least number of seconds between two updates of the view while a run trains (the last step is
        always sent). Keeping it at a few tenths of a second keeps the monitor's cost a small part of a step.
    """

    _esm = STATIC / "training_monitor.js"
    _css = STATIC / "training_monitor.css"

    title = Unicode("Dictionary training").tag(sync=True)
    metrics = List(read_only=True).tag(sync=True)
    #: [{name, status ("running" or an end status), step, steps, tokens, checkpoint, points: {step: [...], loss: [...], ...}}]
    runs = List(read_only=True).tag(sync=True)
    every = Float(0.5)

    def __init__(self, *, title: str = "Dictionary training", every: float = 0.5):
        if not (isinstance(every, (int, float)) and every >= 0):
            raise ValueError(f"every must be a number of seconds >= 0 (e.g. 0.5), got {every!r}.")
        super().__init__(title=title, every=float(every))
        self.set_trait("metrics", [dict(metric) for metric in METRICS])
        self._runs: dict[str, dict[str, Any]] = {}
        self._sent_at: dict[str, float] = {}

    # ---- the Python side of a run
    def track(self, name: str) -> Callable[[dict], None]:
        """The callback for one run called `name`; tracking a name again starts that run's curves over."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"A run needs a non-empty name (e.g. monitor.track('topk')), got {name!r}.")
        self._runs[name] = {"name": name, "status": "running", "step": 0, "steps": None, "tokens": 0,
                            "checkpoint": None, "points": {"step": [], **{key: [] for key in KEYS}}}
        self._sent_at[name] = -math.inf
        self._push()

        def callback(event: dict) -> None:
            self._receive(name, event)

        callback.__name__ = callback.__qualname__ = f"track({name!r})"
        return callback

    def curves(self, name: str) -> dict[str, list[float | None]]:
        """Every step the run `name` reported: {"step": [...], "loss": [...], "l0": [...], ...} (None where not finite)."""
        if name not in self._runs:
            raise KeyError(f"No run called {name!r}; tracked runs: {sorted(self._runs) or 'none yet (monitor.track(name))'}.")
        return {key: list(values) for key, values in self._runs[name]["points"].items()}

    @property
    def names(self) -> list[str]:
        """The tracked runs, in the order they started."""
        return list(self._runs)

    def status(self, name: str) -> str:
        """"running", or how the run ended: "finished", "interrupted", "non_finite" or "source_exhausted"."""
        self.curves(name)  # the same error for an unknown name
        return self._runs[name]["status"]

    def _receive(self, name: str, event: dict) -> None:
        if not isinstance(event, dict) or event.get("event") not in ("step", "end"):
            raise TypeError("A TrainingMonitor callback takes the dicts iw.sae.train sends (event 'step' or 'end'), "
                            f"got {event!r}.")
        run = self._runs[name]
        run.update(step=int(event["step"]), steps=event.get("steps", run["steps"]), tokens=event.get("tokens", run["tokens"]))
        if event["event"] == "step":
            points = run["points"]
            points["step"].append(run["step"])
            for key in KEYS:
                points[key].append(_finite(event.get(key)))
            if time.monotonic() - self._sent_at[name] < self.every and run["step"] != run["steps"]:
                return
        else:
            status = event.get("status")
            if status not in END_STATUSES:
                raise ValueError(f"Unknown end status {status!r}; expected one of {sorted(END_STATUSES)}.")
            run.update(status=status, checkpoint=event.get("checkpoint"))
        self._sent_at[name] = time.monotonic()
        self._push()

    def _push(self) -> None:
        self.set_trait("runs", [_shown(run) for run in self._runs.values()])

    # ---- static preview
    def _static_html(self) -> str:
        if not self._runs:
            return frame(self.title, "<p>no run tracked yet: pass <code>callback=monitor.track(name)</code> to iw.sae.train</p>")
        head = "".join(f"<th>{esc(cell)}</th>" for cell in ("run", "status", "step", *(m["label"] for m in METRICS)))
        rows = []
        for run in self._runs.values():
            last = {key: next((v for v in reversed(run["points"][key]) if v is not None), None) for key in KEYS}
            cells = [run["name"], status_text(run), f"{run['step']} / {run['steps'] or '?'}",
                     *("" if last[key] is None else f"{last[key]:.4g}" for key in KEYS)]
            rows.append("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in cells) + "</tr>")
        table = f'<table style="border-collapse:collapse;font-size:12px"><tr>{head}</tr>{"".join(rows)}</table>'
        return frame(self.title, table, note="static preview: the last values of each run; run the notebook for the live curves")


def status_text(run: dict[str, Any]) -> str:
    """How the run stands, in words (the view writes the same)."""
    status, step = run["status"], run["step"]
    if status == "running":
        return "training"
    if status == "finished":
        return f"finished after {step} steps"
    kept = f"; checkpoint kept: {run['checkpoint']}" if run["checkpoint"] else "; no checkpoint was written"
    words = {"interrupted": "interrupted", "non_finite": "stopped on NaN/inf activations",
             "source_exhausted": "activations ran out"}[status]
    return f"{words} at step {step}{kept}"


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _shown(run: dict[str, Any]) -> dict[str, Any]:
    """The run as the view gets it: at most MAX_POINTS evenly spaced steps, the last one included."""
    points = run["points"]
    n = len(points["step"])
    keep = np.unique(np.linspace(0, n - 1, MAX_POINTS).round().astype(int)) if n > MAX_POINTS else range(n)
    return {**{key: run[key] for key in ("name", "status", "step", "steps", "tokens", "checkpoint")},
            "text": status_text(run), "points": {key: [values[i] for i in keep] for key, values in points.items()}}
