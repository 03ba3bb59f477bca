"""PatchHeatmap: state from a PatchResult, intervene requests checked and answered by the result, preview."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import interpwidgets as iw
from interpwidgets.widgets import PatchHeatmap
from interpwidgets.widgets.testing import decode_array


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=4, seed=0)


@pytest.fixture(scope="module")
def result(random_model, task):
    return iw.patching.activation_patch(random_model, task, site="z", normalize=False, progress=False)


@pytest.fixture(scope="module")
def heatmap(result):
    return PatchHeatmap(result)


def ask(widget: PatchHeatmap, **params: Any) -> tuple[dict, list[bytes]]:
    return widget.handle_message({"kind": "iw:request", "id": "h-1", "method": "intervene", "params": params})


def probs(reply: dict, key: str, buffers: list[bytes]) -> np.ndarray:
    array = dict(reply["result"][key]["probs"])
    array["data"] = buffers[array["data"]["$buffer"]]
    return decode_array(array)


def test_state_describes_the_result(heatmap, result):
    assert heatmap.axes == ["layer", "head"]
    assert heatmap.labels == [result.labels["layer"], result.labels["head"]]
    assert heatmap.values["dtype"] == "float16" and heatmap.values["shape"] == [4, 4]
    np.testing.assert_allclose(decode_array(heatmap.values), result.values.numpy(), rtol=1e-3, atol=1e-4)
    assert heatmap.units == "metric" and heatmap.title == "Activation patching \u00b7 z (denoising)"
    assert heatmap.actions == ["zero", "mean", "patch"] and heatmap.action == "zero"


def test_intervene_answers_with_the_results_outcome(heatmap, result):
    reply, buffers = ask(heatmap, cells=[[1, 2]], action="mean")
    assert reply["ok"], reply
    expected = result.intervene([(1, 2)], action="mean")
    answer = reply["result"]
    assert answer["description"] == "L1H2" and answer["base"] == "clean" and answer["cells"] == [[1, 2]]
    assert answer["metric_before"] == pytest.approx(expected.metric_before)
    assert answer["metric_after"] == pytest.approx(expected.metric_after, rel=1e-5, abs=1e-6)
    assert answer["top_after"]["tokens"] == [token for token, _ in expected.top_after]
    np.testing.assert_allclose(probs(reply, "top_after", buffers), [p for _, p in expected.top_after], rtol=2e-3)
    assert len(buffers) == 2


def test_several_cells_are_applied_together(heatmap, result):
    reply, _ = ask(heatmap, cells=[[0, 1], [3, 2]], action="zero")
    assert reply["result"]["description"] == "L0H1, L3H2"
    assert reply["result"]["metric_after"] == pytest.approx(
        result.intervene([(0, 1), (3, 2)], action="zero").metric_after, rel=1e-5, abs=1e-6
    )


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"cells": [[4, 0]], "action": "zero"}, "index 4 on axis 0 is outside 0..3"),
        ({"cells": [[0, 0, 0]], "action": "zero"}, "list of 2 indices"),
        ({"cells": [[0, 0]], "action": "delete"}, "action must be one of"),
        ({"cells": [[i // 4, i % 4] for i in range(16)] + [[0, 0]], "action": "zero"}, "1 to 16 cells"),
        ({"cells": [[0, 0]]}, "action must be one of"),
        ({"cells": [[0, 0]], "action": "zero", "force": True}, "unexpected parameters"),
    ],
)
def test_malformed_intervene_requests_get_error_replies(heatmap, params, match):
    reply, buffers = ask(heatmap, **params)
    assert reply["ok"] is False and match in reply["error"] and buffers == []


def test_action_is_checked(heatmap):
    with pytest.raises(Exception, match="action must be one of"):
        heatmap.action = "delete"


def test_three_axis_results_and_normalised_units(random_model, task):
    result = iw.patching.activation_patch(random_model, task, site="z", by="head_position", progress=False)
    heatmap = PatchHeatmap(result)
    assert heatmap.axes == ["layer", "head", "position"]
    assert heatmap.values["shape"] == list(result.values.shape)
    assert heatmap.units == "normalised metric (0 = corrupt, 1 = clean)"
    reply, _ = ask(heatmap, cells=[[2, 1, 3]], action="patch")
    assert reply["ok"] and reply["result"]["description"].startswith("L2H1")


def test_path_patching_sweeps_display_the_same_way(random_model, task):
    into_query = iw.patching.path_patch(random_model, task, senders="heads", receivers="L2H1.q", progress=False)
    heatmap = PatchHeatmap(into_query)
    assert heatmap.title == "Path patching \u00b7 z \u2192 L2H1.q (noising)"
    shown = decode_array(heatmap.values)
    assert np.isnan(shown[2:]).all() and np.isfinite(shown[:2]).all()  # heads not upstream of the receiver
    reply, _ = ask(heatmap, cells=[[0, 3]], action="patch")
    assert reply["ok"] and reply["result"]["description"] == "L0H3"

    entries = iw.patching.path_patch(random_model, task, senders=["L0H1", ["L1H2", "mlp0"]], progress=False)
    heatmap = PatchHeatmap(entries)
    assert heatmap.axes == ["sender"] and heatmap.labels == [["L0H1", "L1H2 + mlp0"]]
    reply, _ = ask(heatmap, cells=[[1]], action="zero")
    assert reply["result"]["description"] == "L1H2, mlp0"
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
