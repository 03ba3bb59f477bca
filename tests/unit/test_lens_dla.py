"""iw.lens.direct_logit_attribution: each component's direct effect on a logit difference, checked against
TransformerLens's own residual decompositions and against the model's real logits; `intervene` against a hook
written here."""

from __future__ import annotations

import matplotlib
import pytest
import torch

import interpwidgets as iw
from interpwidgets.interventions import count_hooks, run_hooked
from interpwidgets.lens import DLAResult, direct_logit_attribution
from interpwidgets.models import load_model
from interpwidgets.models.families import save_random_family

matplotlib.use("Agg")

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def gpt2_model(tmp_path_factory):
    """A GPT-2-shaped random model (LayerNorm with random weight and bias, attention output biases)."""
    return load_model(str(save_random_family("gpt2", tmp_path_factory.mktemp("gpt2"))), device="cpu")


@pytest.fixture(scope="module")
def ioi_task(teaching_model):
    return iw.tasks.ioi(teaching_model, n=6, seed=0)


@pytest.fixture(scope="module")
def ioi_dla(teaching_model, ioi_task) -> DLAResult:
    return direct_logit_attribution(teaching_model, ioi_task, progress=False)


def tl_reference(model, tokens: torch.Tensor, answer: int, wrong: int) -> dict[str, torch.Tensor]:
    """Direct effects [batch] by label from TransformerLens: `stack_head_results` and `decompose_resid` with
    apply_ln=True (centred and divided by the cached final scale; they assume folded weights, so ln_final's weight
    is applied here), projected on W_U[:, answer] - W_U[:, wrong]; "bias" = ln_final's bias . d + b_U difference."""
    direction = model.W_U[:, answer] - model.W_U[:, wrong]
    weight, bias = model.ln_final.weight, model.ln_final.bias
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        heads, head_labels = cache.stack_head_results(layer=-1, pos_slice=-1, apply_ln=True, return_labels=True)
        parts, part_labels = cache.decompose_resid(apply_ln=True, pos_slice=-1, return_labels=True)
        found = {label: (h * weight) @ direction for label, h in zip(head_labels, heads)}
        for label, part in zip(part_labels, parts):
            name = label if label in ("embed", "pos_embed") else f"{label.split('_')[1]}{label.split('_')[0]}"
            found[name] = (part * weight) @ direction  # attn{l} / mlp{l}: the whole attention / MLP output
        found["bias"] = (bias @ direction + model.b_U[answer] - model.b_U[wrong]).expand(tokens.shape[0])
    return found


@pytest.mark.parametrize("which", ["teaching", "gpt2"])
def test_dla_matches_transformer_lens_head_results_and_decompose_resid(which, teaching_model, gpt2_model):
    """Every head, embedding, MLP and the bias term equal TransformerLens's stacked decompositions through the frozen
    final norm within 1e-4; each layer's heads plus its output bias equal TransformerLens's attention output."""
    model = teaching_model if which == "teaching" else gpt2_model
    answer, wrong = model.to_single_token(" Mary"), model.to_single_token(" John")
    result = direct_logit_attribution(model, PROMPT, " Mary", " John", progress=False)
    reference = tl_reference(model, model.to_tokens(PROMPT), answer, wrong)
    values = dict(zip(result.labels, result.values[0]))
    for label, kind in zip(result.labels, result.kinds):
        if kind != "attn_bias":
            assert float(values[label]) == pytest.approx(float(reference[label][0]), abs=1e-4), label
    for layer in range(model.cfg.n_layers):
        attn = sum(float(values[f"L{layer}H{h}"]) for h in range(model.cfg.n_heads))
        attn += float(values.get(f"attn{layer}.b_O", 0.0))
        assert attn == pytest.approx(float(reference[f"attn{layer}"][0]), abs=1e-4)
        assert float(result.by_layer()["attn"][layer]) == pytest.approx(attn, abs=1e-5)
    assert "attn0.b_O" in result.labels and bool((model.b_O != 0).any())  # both models have output biases
    assert result.direction == "logit(' Mary') - logit(' John')"


def test_dla_of_a_task_sums_to_the_real_logit_difference_per_prompt(teaching_model, ioi_task, ioi_dla):
    """On IOI prompts every row of values sums (float32 rounding) to task.logit_diff of the model's own logits."""
    with torch.no_grad():
        real = ioi_task.logit_diff(teaching_model(ioi_task.clean_tokens)).cpu()
    torch.testing.assert_close(ioi_dla.logit_diff, real, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ioi_dla.values.sum(1), real, atol=1e-4, rtol=1e-5)
    n_layers, n_heads = teaching_model.cfg.n_layers, teaching_model.cfg.n_heads
    assert ioi_dla.values.shape == (len(ioi_task), len(ioi_dla.labels)) and ioi_dla.values.dtype == torch.float32
    assert ioi_dla.labels[:2] == ["embed", "pos_embed"] and ioi_dla.labels[-1] == "bias"
    assert ioi_dla.kinds.count("head") == n_layers * n_heads and ioi_dla.kinds.count("mlp") == n_layers
    assert ioi_dla.direction == "logit(answer) - logit(wrong)" and ioi_dla.task is ioi_task
    assert torch.equal(ioi_dla.tokens, ioi_task.clean_tokens)


def test_dla_of_one_prompt_without_a_wrong_token_sums_to_the_answer_logit(teaching_model):
    """With wrong=None the direction is logit(answer) alone, and the components sum to the real logit."""
    result = direct_logit_attribution(teaching_model, PROMPT, " Mary", progress=False)
    with torch.no_grad():
        logit = teaching_model(PROMPT)[0, -1, teaching_model.to_single_token(" Mary")].float()
    assert float(result.logit_diff[0]) == pytest.approx(float(logit), abs=1e-5)
    assert float(result.values.sum()) == pytest.approx(float(logit), abs=1e-4)
    assert result.direction == "logit(' Mary')"


def test_heads_mean_by_layer_and_dataframe_are_views_of_values(ioi_dla):
    """heads is the [layer, head] grid of the per-prompt head values' mean; by_layer totals, embeddings and bias add
    up to the mean logit difference; to_dataframe has one row per (prompt, component)."""
    columns = [i for i, kind in enumerate(ioi_dla.kinds) if kind == "head"]
    expected = ioi_dla.values[:, columns].mean(0).reshape(ioi_dla.n_layers, ioi_dla.n_heads)
    torch.testing.assert_close(ioi_dla.heads, expected)
    assert ioi_dla.heads[1, 2] == pytest.approx(float(ioi_dla.mean[ioi_dla.labels.index("L1H2")]))
    layers = ioi_dla.by_layer()
    rest = sum(float(ioi_dla.mean[ioi_dla.labels.index(k)]) for k in ("embed", "pos_embed", "bias"))
    total = float(layers["attn"].sum() + layers["mlp"].sum()) + rest
    assert total == pytest.approx(float(ioi_dla.logit_diff.mean()), abs=1e-4)
    frame = ioi_dla.to_dataframe()
    assert len(frame) == ioi_dla.values.numel()
    row = frame[(frame.prompt == 2) & (frame.component == "L3H1")].iloc[0]
    assert (row["kind"], row["layer"], row["head"]) == ("head", 3, 1)
    assert frame[frame.component == "embed"]["layer"].isna().all()
    assert row.value == pytest.approx(float(ioi_dla.values[2, ioi_dla.labels.index("L3H1")]))


def zero_head_metric(model, task, layer: int, head: int) -> float:
    """Mean logit difference with blocks.{layer}.attn.hook_z[:, :, head] set to zero by a hook written here."""
    def zero(z, hook):
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    with torch.no_grad():
        return float(task.metric(run_hooked(model, task.clean_tokens, [(f"blocks.{layer}.attn.hook_z", zero)])))


def test_intervene_zero_ablating_a_head_equals_a_hook_that_zeroes_its_z(teaching_model, ioi_task, ioi_dla):
    """intervene("L3H0") gives metric_after = the metric with hook_z[:, :, 0] of layer 3 zeroed, metric_before = the
    result's mean logit difference, the first prompt's top-5 before and after, and leaves no hooks on the model."""
    outcome = ioi_dla.intervene("L3H0")
    assert outcome.metric_after == pytest.approx(zero_head_metric(teaching_model, ioi_task, 3, 0), abs=1e-5)
    assert outcome.metric_before == pytest.approx(float(ioi_dla.logit_diff.mean()), abs=1e-5)
    assert outcome.components == ["L3H0"] and outcome.ablation == "zero" and outcome.base == "clean"
    assert len(outcome.top_before) == len(outcome.top_after) == 5
    assert count_hooks(teaching_model) == 0


def test_intervene_mean_ablation_uses_the_tasks_corrupt_prompts(teaching_model, ioi_task, ioi_dla):
    """Mean ablation of a head and an MLP together sets them to their mean over the task's corrupt prompts (a hook
    written here does the same), in one forward."""
    hooks = ["blocks.1.attn.hook_z", "blocks.2.hook_mlp_out"]
    with torch.no_grad():
        _, cache = teaching_model.run_with_cache(ioi_task.corrupt_tokens, names_filter=lambda n: n in hooks)

    def head_mean(z, hook):
        z = z.clone()
        z[:, :, 2] = cache[hooks[0]][:, :, 2].mean(0)
        return z

    def mlp_mean(out, hook):
        return cache[hooks[1]].mean(0, keepdim=True).expand_as(out).clone()

    with torch.no_grad():
        logits = run_hooked(teaching_model, ioi_task.clean_tokens, [(hooks[0], head_mean), (hooks[1], mlp_mean)])
    outcome = ioi_dla.intervene(["L1H2", "mlp2"], ablation="mean")
    assert outcome.metric_after == pytest.approx(float(ioi_task.metric(logits)), abs=1e-5)
    assert outcome.components == ["L1H2", "mlp2"]
    assert count_hooks(teaching_model) == 0


def test_bad_inputs_are_refused_with_clear_errors(teaching_model, ioi_task, ioi_dla):
    """Empty and too-long prompts, a missing or multi-token answer, a task with answer=, and an unknown ablation or
    component raise errors that name the problem."""
    with pytest.raises(ValueError, match="empty"):
        direct_logit_attribution(teaching_model, "", " Mary", progress=False)
    with pytest.raises(ValueError, match="the model reads 1 to"):
        direct_logit_attribution(teaching_model, torch.ones(teaching_model.cfg.n_ctx + 1, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="needs answer="):
        direct_logit_attribution(teaching_model, PROMPT, progress=False)
    with pytest.raises(ValueError, match="not one token"):
        direct_logit_attribution(teaching_model, PROMPT, "Mary John", progress=False)
    with pytest.raises(ValueError, match="not both"):
        direct_logit_attribution(teaching_model, ioi_task, " Mary", progress=False)
    with pytest.raises(ValueError, match="ablation must be one of"):
        ioi_dla.intervene("L0H0", ablation="resample")
    with pytest.raises(ValueError, match="Unknown component"):
        ioi_dla.intervene("L0Q0")
    assert count_hooks(teaching_model) == 0


def test_plot_draws_a_centred_head_heatmap_and_component_bars(ioi_dla):
    """plot() returns (heatmap, bars): a layer x head image on a colour scale symmetric about zero, and one bar per
    non-head component."""
    import matplotlib.pyplot as plt

    heatmap, bars = ioi_dla.plot()
    low, high = heatmap.images[0].get_clim()
    assert low == pytest.approx(-high) and high > 0
    assert heatmap.images[0].get_array().shape == (ioi_dla.n_layers, ioi_dla.n_heads)
    assert len(bars.patches) == sum(kind != "head" for kind in ioi_dla.kinds)
    assert heatmap.get_xlabel() == "head" and heatmap.get_ylabel() == "layer"
    plt.close("all")
