"""Ctrl-C in a widget's request: a `KeyboardInterrupt` raised from a forward hook while a handler runs the model
propagates out of `handle_message` (it is no error reply: `InterpWidget` catches `Exception` only), and afterwards
the model has no hook left and gives the same logits, nothing of the interrupted request is recorded in the widget's
history, and the widget answers the next valid request exactly as it did before the interrupt."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.interventions.hooks import count_hooks
from interpwidgets.widgets.testing import ask
from test_reliability_interrupts import Interrupt, model_state
from test_reliability_widgets import PROMPT, build

HOOK = "blocks.1.hook_resid_post"  # runs once per forward

# (widget, request that runs the model, its params, the forward it is interrupted in)
REQUESTS = [
    ("PatchHeatmap", "intervene", {"cells": [[1, 2]]}, 1),
    ("TokenFeatures", "intervene", {"position": 4}, 1),
    ("Steering", "generate", {}, 2),
    ("CircuitGraph", "ablate", {"node": "resid_post2/7@4"}, 2),
    ("DirectLogitAttribution", "ablate", {"component": "L1H0"}, 1),
    ("AttentionPatterns", "prompt", {"text": "When John went to the store"}, 1),  # pattern reads the cached result
    ("LogitLens", "prompt", {"text": "When John went to the store"}, 1),  # follow reads the cached result
]


@pytest.fixture(scope="module")
def widgets(random_model):
    return {}


def _widget(widgets, name, model):
    if name not in widgets:
        widgets[name] = build(name, model)
    return widgets[name]


@pytest.mark.parametrize(("name", "method", "params", "at"), REQUESTS, ids=[f"{r[0]}.{r[1]}" for r in REQUESTS])
def test_an_interrupted_request_propagates_and_leaves_model_and_widget_as_they_were(
        random_model, widgets, one_thread, name, method, params, at):
    built = _widget(widgets, name, random_model)
    widget = built.widget
    check_method, check_params = built.valid[0]
    tokens = random_model.to_tokens(PROMPT)
    with torch.no_grad():
        logits = random_model(tokens)
    before = model_state(random_model)
    answer_before = ask(widget, check_method, **check_params)
    history = list(widget.history)
    interrupt = Interrupt(at)
    with pytest.raises(KeyboardInterrupt), random_model.hooks(fwd_hooks=[(HOOK, interrupt)]):
        widget.handle_message({"kind": "iw:request", "id": "ctrl-c", "method": method, "params": params})
    assert interrupt.calls == at  # interrupted in the forward chosen
    assert count_hooks(random_model) == 0 and model_state(random_model) == before
    with torch.no_grad():
        assert torch.equal(random_model(tokens), logits)
    assert widget.history == history  # the interrupted request recorded nothing
    assert ask(widget, check_method, **check_params) == answer_before
    ok, _ = ask(widget, method, **params)  # and the interrupted request itself now runs
    assert ok


def test_feature_dashboard_interrupted_while_computing_a_dictionarys_statistics(random_model, widgets, one_thread):
    """Choosing another dictionary computes its corpus statistics: interrupted there (from the trait update, then from
    the feature request that computes them lazily), the dashboard answers as a fresh one does once it may finish."""
    dashboard = _widget(widgets, "FeatureDashboard", random_model).widget
    other = "blocks.2.hook_resid_post"
    before = model_state(random_model)
    for interrupted in ("update", "request"):
        with pytest.raises(KeyboardInterrupt), random_model.hooks(fwd_hooks=[(HOOK, Interrupt(1))]):
            if interrupted == "update":
                dashboard.set_state({"hook": other})
            else:
                dashboard.handle_message({"kind": "iw:request", "id": "ctrl-c", "method": "feature", "params": {}})
        assert count_hooks(random_model) == 0 and model_state(random_model) == before
    fresh = build("FeatureDashboard", random_model).widget
    fresh.set_state({"hook": other})
    assert dashboard.hook == other
    assert ask(dashboard, "feature") == ask(fresh, "feature")


def test_a_python_call_after_an_interrupted_request_is_recorded(random_model, widgets, one_thread):
    """After Ctrl-C in a request, an action taken from Python (set_prompt) is kept in the history, not collected for
    the request that never finished."""
    lens = _widget(widgets, "LogitLens", random_model).widget
    with pytest.raises(KeyboardInterrupt), random_model.hooks(fwd_hooks=[(HOOK, Interrupt(1))]):
        lens.handle_message({"kind": "iw:request", "id": "ctrl-c", "method": "prompt", "params": {"text": "When Mary went"}})
    steps = len(lens.history)
    lens.set_prompt("When John and Mary went")
    assert len(lens.history) == steps + 1 and lens.history[-1].action.startswith("prompt 'When John and Mary went'")
