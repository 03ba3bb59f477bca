"""PatchHeatmap: state from a PatchResult, the `action` trait as the one source of the click's action, intervene
requests checked and answered by the result, the action texts naming the run each acts on, preview."""

from __future__ import annotations

import numpy as np
import torch
import pytest

import interpwidgets as iw
from interpwidgets.widgets import PatchHeatmap
from interpwidgets.widgets.testing import ask, decode_array


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=4, seed=0)


@pytest.fixture(scope="module")
def result(random_model, task):
    return iw.patching.activation_patch(random_model, task, site="z", normalize=False, progress=False)


@pytest.fixture
def heatmap(result):
    return PatchHeatmap(result)


def intervene(widget: PatchHeatmap, action: str, cells: list[list[int]]) -> dict:
    widget.action = action
    ok, answer = ask(widget, "intervene", cells=cells)
    assert ok, answer
    return answer


def test_state_describes_the_result(heatmap, result):
    assert heatmap.axes == ["layer", "head"]
    assert heatmap.labels == [result.labels["layer"], result.labels["head"]]
    assert heatmap.values["dtype"] == "float16" and heatmap.values["shape"] == [4, 4]
    np.testing.assert_allclose(decode_array(heatmap.values), result.values.numpy(), rtol=1e-3, atol=1e-4)
    assert heatmap.units == "logit difference" and heatmap.title == "Activation patching \u00b7 z \u00b7 clean into corrupt \u00b7 logit difference"
    assert list(heatmap.actions) == ["zero", "mean", "patch"] and heatmap.action == "zero"


def test_action_texts_name_the_run_each_action_acts_on_when_patching_into_corrupt(heatmap):
    """Patching into the corrupt run: "patch" starts from the corrupt run, the ablations from the clean one."""
    assert heatmap.actions["patch"] == {
        "label": "patch clean into corrupt",
        "before": "corrupt run: top predictions",
        "after": "corrupt run, clean patched in",
        "metric": "metric on the corrupt prompts",
        "prompt": f"predictions for the first corrupt prompt: {heatmap.prompts['corrupt']}",
        "hint": "click a cell: patch it clean into corrupt",
    }
    assert heatmap.actions["zero"] == {
        "label": "zero-ablate",
        "before": "clean run: top predictions",
        "after": "clean run, zero-ablated",
        "metric": "metric on the clean prompts",
        "prompt": f"predictions for the first clean prompt: {heatmap.prompts['clean']}",
        "hint": "click a cell: zero-ablate it on the clean prompts",
    }
    assert heatmap.actions["mean"]["before"] == "clean run: top predictions"


def test_action_texts_follow_a_result_patched_into_the_clean_run(random_model, task):
    into_clean = iw.patching.activation_patch(random_model, task, site="z", patch_into="clean", normalize=False,
                                              progress=False)
    heatmap = PatchHeatmap(into_clean)
    assert heatmap.title == "Activation patching \u00b7 z \u00b7 corrupt into clean \u00b7 logit difference"
    assert heatmap.actions["patch"]["label"] == "patch corrupt into clean"
    assert heatmap.actions["patch"]["before"] == "clean run: top predictions"
    assert heatmap.actions["patch"]["after"] == "clean run, corrupt patched in"
    assert heatmap.actions["patch"]["metric"] == "metric on the clean prompts"


@pytest.mark.parametrize("action", ["zero", "mean", "patch"])
def test_each_actions_metric_before_is_the_unpatched_metric_of_the_run_its_texts_name(heatmap, result, action):
    answer = intervene(heatmap, action, [[1, 2]])
    run = "corrupt" if action == "patch" else "clean"  # clean activations patched into corrupt; ablations on clean
    assert heatmap.actions[action]["metric"] == f"metric on the {run} prompts"
    assert answer["metric_before"] == pytest.approx(result.corrupt_metric if run == "corrupt" else result.clean_metric)


def test_intervene_applies_the_action_trait_as_the_results_outcome(heatmap, result):
    answer = intervene(heatmap, "mean", [[1, 2]])
    expected = result.intervene([(1, 2)], ablation="mean")
    assert answer["description"] == "L1H2" and answer["action"] == "mean" and answer["cells"] == [[1, 2]]
    assert answer["metric_before"] == pytest.approx(expected.metric_before)
    assert answer["metric_after"] == pytest.approx(expected.metric_after, rel=1e-5, abs=1e-6)
    assert answer["top_after"]["tokens"] == [token for token, _ in expected.top_after]
    np.testing.assert_allclose(decode_array(answer["top_after"]["probs"]), [p for _, p in expected.top_after], rtol=2e-3)
    patched = intervene(heatmap, "patch", [[1, 2]])
    assert patched["metric_after"] == pytest.approx(result.intervene([(1, 2)]).metric_after, rel=1e-5, abs=1e-6)


def test_several_cells_are_applied_together(heatmap, result):
    answer = intervene(heatmap, "zero", [[0, 1], [3, 2]])
    assert answer["description"] == "L0H1, L3H2"
    assert answer["metric_after"] == pytest.approx(
        result.intervene([(0, 1), (3, 2)], ablation="zero").metric_after, rel=1e-5, abs=1e-6
    )


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"cells": [[4, 0]]}, "index 4 on axis 0 is outside 0..3"),
        ({"cells": [[0, 0, 0]]}, "list of 2 indices"),
        ({"cells": [[i // 4, i % 4] for i in range(16)] + [[0, 0]]}, "1 to 16 cells"),
        ({"cells": [[0, 0]], "action": "zero"}, "unexpected parameters"),
    ],
)
def test_malformed_intervene_requests_get_error_replies(heatmap, params, match):
    reply, buffers = heatmap.handle_message({"kind": "iw:request", "id": "h-1", "method": "intervene", "params": params})
    assert reply["ok"] is False and match in reply["error"] and buffers == []


def test_the_action_trait_is_checked_from_python_and_from_the_front_end(heatmap, monkeypatch):
    with pytest.raises(Exception, match="action must be one of"):
        heatmap.action = "delete"
    errors = []
    monkeypatch.setattr(heatmap, "send_error", errors.append)
    monkeypatch.setattr(heatmap, "send_state", lambda keys: None)
    heatmap.set_state({"action": "patch"})
    assert heatmap.action == "patch" and errors == []
    heatmap.set_state({"action": "delete"})
    assert heatmap.action == "patch" and "action must be one of" in errors[-1]
    heatmap.set_state({"actions": {}})
    assert "may not change ['actions']" in errors[-1]


def test_three_axis_results_and_normalized_units(random_model, task):
    result = iw.patching.activation_patch(random_model, task, site="z", by="head_position", progress=False)
    heatmap = PatchHeatmap(result, action="patch")
    assert heatmap.axes == ["layer", "head", "position"]
    assert heatmap.values["shape"] == list(result.values.shape)
    assert heatmap.units == "normalized logit difference (0 = corrupt, 1 = clean)"
    assert heatmap.title.endswith("\u00b7 clean into corrupt \u00b7 normalized logit difference (0 = corrupt, 1 = clean)")
    ok, answer = ask(heatmap, "intervene", cells=[[2, 1, 3]])
    assert ok and answer["description"].startswith("L2H1")


def test_path_patching_sweeps_display_the_same_way(random_model, task):
    into_query = iw.patching.path_patch(random_model, task, senders="heads", receivers="L2H1.q", progress=False)
    heatmap = PatchHeatmap(into_query, action="patch")
    assert heatmap.title == ("Path patching \u00b7 z \u2192 L2H1.q \u00b7 corrupt into clean \u00b7 "
                             "normalized logit difference (0 = corrupt, 1 = clean)")
    shown = decode_array(heatmap.values)
    assert np.isnan(shown[2:]).all() and np.isfinite(shown[:2]).all()  # heads not upstream of the receiver
    ok, answer = ask(heatmap, "intervene", cells=[[0, 3]])
    assert ok and answer["description"] == "L0H3"

    entries = iw.patching.path_patch(random_model, task, senders=["L0H1", ["L1H2", "mlp0"]], progress=False)
    heatmap = PatchHeatmap(entries)
    assert heatmap.axes == ["sender"] and heatmap.labels == [["L0H1", "L1H2 + mlp0"]]
    assert intervene(heatmap, "zero", [[1]])["description"] == "L1H2, mlp0"
    assert "<svg" in heatmap._repr_mimebundle_()[0]["text/html"]


def test_labels_must_match_the_values(result):
    broken = type(result)(**{**result.__dict__, "labels": {"layer": ["L0"], "head": result.labels["head"]}})
    with pytest.raises(ValueError, match="axis 'layer' has 4 entries but 1 labels"):
        PatchHeatmap(broken)


def test_static_preview_is_an_escaped_svg_with_a_legend(result):
    hostile = type(result)(**{**result.__dict__, "labels": {**result.labels, "head": ["<b>H0</b>", "H1", "H2", "H3"]}})
    html = PatchHeatmap(hostile)._repr_mimebundle_()[0]["text/html"]
    assert "<svg" in html and "data:image/png;base64," in html and "linear-gradient" in html
    assert "&lt;b&gt;H0&lt;/b&gt;" in html and "<b>H0" not in html


def top5(model, tokens) -> list[str]:
    """The first prompt's 5 most probable next tokens, from a plain forward of the model (no patching code)."""
    with torch.no_grad():
        logits = model(tokens[:1])[0, -1]
    return [model.tokenizer.decode([i]) for i in logits.softmax(-1).topk(5).indices.tolist()]


@pytest.mark.parametrize("patch_into", ["corrupt", "clean"])
@pytest.mark.parametrize("action", ["zero", "mean", "patch"])
def test_each_heading_names_the_run_whose_predictions_it_lists(random_model, task, patch_into, action):
    """For both patch_into values and every action, the "before" heading names the run whose first prompt's
    predictions are listed (checked against a plain forward of each run), and the "after" heading names the run acted on."""
    result = iw.patching.activation_patch(random_model, task, site="z", patch_into=patch_into, normalize=False,
                                          progress=False)
    widget = PatchHeatmap(result)
    answer = intervene(widget, action, [[1, 2]])
    listed = answer["top_before"]["tokens"]
    runs = {run: top5(random_model, getattr(task, f"{run}_tokens")) for run in ("clean", "corrupt")}
    assert runs["clean"] != runs["corrupt"]  # the check can tell the runs apart
    shown = next(run for run, tokens in runs.items() if tokens == listed)
    texts = widget.actions[action]
    assert texts["before"] == f"{shown} run: top predictions"
    assert texts["metric"] == f"metric on the {shown} prompts"
    assert texts["after"].startswith(f"{shown} run, ")
    assert texts["prompt"].startswith(f"predictions for the first {shown} prompt: ")


def test_the_first_prompts_are_shown_as_their_last_tokens(random_model, task, heatmap):
    """The outcome says which prompt its predictions are for: each run's first prompt, its last tokens."""
    for run in ("clean", "corrupt"):
        strings = [random_model.tokenizer.decode([i]) for i in getattr(task, f"{run}_tokens")[0].tolist()]
        tail = "".join(strings[-12:])
        shown = heatmap.prompts[run]
        assert shown.endswith(tail) and len(shown) <= len(tail) + 1
        assert shown.startswith("\u2026") == (len(strings) > 12)
    assert heatmap.actions["zero"]["prompt"] == f"predictions for the first clean prompt: {heatmap.prompts['clean']}"


def test_a_custom_metric_is_named_as_a_metric_not_a_logit_difference(random_model, task):
    def first_logit(logits):
        return logits[:, -1, 0].mean()

    result = iw.patching.activation_patch(random_model, task, site="z", metric=first_logit, progress=False)
    heatmap = PatchHeatmap(result)
    assert heatmap.units == "normalized metric (0 = corrupt, 1 = clean)"
    assert heatmap.title == "Activation patching \u00b7 z \u00b7 clean into corrupt \u00b7 normalized metric (0 = corrupt, 1 = clean)"
