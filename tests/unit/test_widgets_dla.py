"""DirectLogitAttribution: the heads and bars it sends are the result's direct effects (bars checked by summing the
components by hand), the sum line holds the model's own logit difference, an `ablate` request applies the
`ablation` trait and answers what a hook written here gives, malformed requests and writes are refused and the
widget carries on, the code of an ablation reproduces it, and the preview shows the labels, escaped."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import interpwidgets as iw
from interpwidgets.widgets import DirectLogitAttribution
from interpwidgets.widgets.testing import ask, decode_array

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def task(teaching_model):
    return iw.tasks.ioi(teaching_model, n=6, seed=0)


@pytest.fixture(scope="module")
def result(teaching_model, task):
    return iw.lens.direct_logit_attribution(teaching_model, task)


@pytest.fixture
def dla(result):
    return DirectLogitAttribution(result)


def logit_difference(model, task, fwd_hooks=()) -> float:
    """Mean logit(answer) - logit(wrong) at the last position of the task's clean prompts, under `fwd_hooks`."""
    with torch.no_grad():
        logits = model.run_with_hooks(task.clean_tokens, fwd_hooks=list(fwd_hooks))[:, -1]
    rows = torch.arange(len(logits))
    return float((logits[rows, task.answer_tokens] - logits[rows, task.wrong_tokens]).mean())


def test_state_sends_the_heads_and_one_bar_per_component_group(dla, result):
    values = result.values.numpy()
    n_layers, n_heads = result.n_layers, result.n_heads
    columns = [result.labels.index(f"L{layer}H{head}") for layer in range(n_layers) for head in range(n_heads)]
    np.testing.assert_allclose(decode_array(dla.heads), values[:, columns].mean(0).reshape(n_layers, n_heads),
                               rtol=2e-3, atol=2e-3)
    assert dla.head_labels[1][2] == "L1H2"
    assert dla.bars["labels"] == ["embed", "pos_embed", "attn0", "mlp0", "attn1", "mlp1", "attn2", "mlp2", "attn3", "mlp3", "bias"]
    assert dla.bars["ablate"] == ["", "", "", "mlp0", "", "mlp1", "", "mlp2", "", "mlp3", ""]
    mean = dict(zip(result.labels, values.mean(0).tolist()))
    by_hand = [mean["embed"], mean["pos_embed"]]
    for layer in range(n_layers):
        attn = [v for label, v in mean.items() if label.startswith(f"L{layer}H") or label == f"attn{layer}.b_O"]
        by_hand += [sum(attn), mean[f"mlp{layer}"]]
    by_hand.append(mean["bias"])
    np.testing.assert_allclose(decode_array(dla.bars["values"]), by_hand, rtol=2e-3, atol=2e-3)
    assert dla.units == "direct effect on logit(answer) - logit(wrong)" and dla.n_prompts == 6
    assert isinstance(dla.heads["data"], bytes) and isinstance(dla.bars["values"]["data"], bytes)


def test_the_sum_line_holds_the_models_own_logit_difference(dla, teaching_model, task):
    expected = logit_difference(teaching_model, task)
    assert dla.totals["logit_diff"] == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert dla.totals["sum"] == pytest.approx(expected, rel=1e-4, abs=1e-3)


def test_ablating_a_head_answers_what_a_zeroing_hook_gives(dla, teaching_model, task):
    def zero_head(z, hook):
        z[:, :, 2] = 0.0
        return z

    ok, answer = ask(dla, "ablate", component="L1H2")
    assert ok, answer
    assert answer["component"] == "L1H2" and answer["ablation"] == "zero" and answer["description"] == "L1H2"
    assert answer["metric_before"] == pytest.approx(logit_difference(teaching_model, task), rel=1e-4, abs=1e-4)
    assert answer["metric_after"] == pytest.approx(
        logit_difference(teaching_model, task, [("blocks.1.attn.hook_z", zero_head)]), rel=1e-4, abs=1e-4)
    assert answer["metric"] == "logit(answer) - logit(wrong), mean over 6 prompts"
    assert len(answer["top_after"]["tokens"]) == 5 and answer["top_after"]["probs"]["dtype"] == "float16"


def test_the_ablation_trait_chooses_mean_ablation_of_an_mlp_over_the_corrupt_prompts(dla, teaching_model, task):
    with torch.no_grad():
        _, cache = teaching_model.run_with_cache(task.corrupt_tokens, names_filter="blocks.2.hook_mlp_out")
    mean = cache["blocks.2.hook_mlp_out"].mean(0, keepdim=True)

    def mean_mlp(out, hook):
        return mean.expand_as(out).clone()

    dla.ablation = "mean"
    ok, answer = ask(dla, "ablate", component="mlp2")
    assert ok, answer
    assert answer["ablation"] == "mean" and answer["after_title"] == "after mean-ablating (first prompt)"
    assert answer["metric_after"] == pytest.approx(
        logit_difference(teaching_model, task, [("blocks.2.hook_mlp_out", mean_mlp)]), rel=1e-4, abs=1e-4)


def test_the_code_of_an_ablation_reproduces_it(dla, result):
    ok, answer = ask(dla, "ablate", component="L3H0")
    assert ok, answer
    call = answer["code"].splitlines()[-1]
    assert call == "result.intervene(['L3H0'], ablation='zero')"
    assert dla.history[-1].action == "zero-ablate L3H0"
    assert eval(call, {"result": result}).metric_after == pytest.approx(answer["metric_after"], rel=1e-6)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"component": "embed"}, "component must be a head or an MLP of this result"),
        ({"component": "L9H0"}, "component must be a head or an MLP of this result"),
        ({"component": 3}, "component must be a head or an MLP of this result"),
        ({}, "component must be a head or an MLP of this result"),
        ({"component": "L1H2", "ablation": "mean"}, "unexpected parameters ['ablation']"),
    ],
)
def test_malformed_ablate_requests_get_error_replies_and_the_widget_carries_on(dla, params, match):
    reply, buffers = dla.handle_message({"kind": "iw:request", "id": "d-1", "method": "ablate", "params": params})
    assert reply["ok"] is False and match in reply["error"] and buffers == []
    assert dla.history == []
    ok, answer = ask(dla, "ablate", component="L0H1")
    assert ok and answer["description"] == "L0H1"


def test_the_ablation_trait_is_checked_from_python_and_from_the_front_end(dla, monkeypatch):
    with pytest.raises(Exception, match="ablation must be one of"):
        dla.ablation = "resample"
    errors = []
    monkeypatch.setattr(dla, "send_error", errors.append)
    monkeypatch.setattr(dla, "send_state", lambda keys: None)
    dla.set_state({"ablation": "mean"})
    assert dla.ablation == "mean" and errors == []
    dla.set_state({"ablation": "delete"})
    assert dla.ablation == "mean" and "ablation must be one of" in errors[-1]
    dla.set_state({"bars": {}})
    assert "may not change ['bars']" in errors[-1]


def test_a_prompt_with_answer_and_wrong_builds_its_own_result(teaching_model):
    dla = DirectLogitAttribution(teaching_model, PROMPT, " Mary", " John", ablation="mean")
    assert dla.direction == "logit(' Mary') - logit(' John')" and dla.n_prompts == 1 and dla.ablation == "mean"
    with torch.no_grad():
        logits = teaching_model(teaching_model.to_tokens(PROMPT))[0, -1]
    mary, john = (teaching_model.tokenizer.encode(t, add_special_tokens=False)[0] for t in (" Mary", " John"))
    assert dla.totals["logit_diff"] == pytest.approx(float(logits[mary] - logits[john]), rel=1e-4, abs=1e-4)
    with pytest.raises(ValueError, match="comes with its prompts"):
        DirectLogitAttribution(iw.lens.direct_logit_attribution(teaching_model, PROMPT, " Mary"), PROMPT)
    with pytest.raises(ValueError, match="needs an iw.lens.direct_logit_attribution result"):
        DirectLogitAttribution(teaching_model)


def test_static_preview_shows_the_heads_bars_and_sum_escaped(result):
    hostile = dataclasses.replace(result, direction="<b>logit</b>")
    html = DirectLogitAttribution(hostile)._repr_mimebundle_()[0]["text/html"]
    assert "<svg" in html and "data:image/png;base64," in html and "linear-gradient" in html
    for label in ("L0", "L3", "H0", "H3", "embed", "pos_embed", "attn2", "mlp3", "bias"):
        assert f">{label}<" in html
    assert "sum of components = " in html and "the model&#x27;s logit difference" in html
    assert "direct effect on &lt;b&gt;logit&lt;/b&gt;" in html and "<b>logit" not in html
