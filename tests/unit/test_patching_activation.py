"""Activation patching: equal to transformer_lens.patching (random weights are enough for exactness), into
either run, normalization, chunking, progress, results, and bad input."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import pytest
import torch
import transformer_lens.patching as tlp

import interpwidgets.patching.stacking as stacking
from interpwidgets import config
from interpwidgets.interventions import Component, ablate, count_hooks
from interpwidgets.patching import activation_patch
from interpwidgets.patching.stacking import stacked_forward, supports_late_entry
from interpwidgets.tasks import Task, ioi

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def tiny(random_model):
    """3 prompts of 6 tokens: corrupt differs from clean at positions 2 and 4."""
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(1, random_model.cfg.d_vocab, (3, 6), generator=gen)
    clean[:, 0] = random_model.tokenizer.bos_token_id
    corrupt = clean.clone()
    corrupt[:, [2, 4]] = torch.randint(1, random_model.cfg.d_vocab, (3, 2), generator=gen)
    answers, wrongs = torch.randint(1, random_model.cfg.d_vocab, (2, 3), generator=gen)
    return Task("tiny", clean, corrupt, answers, wrongs)


def reference(fn, model, task, into_clean=False):
    """transformer_lens.patching's sweep: clean activations into the corrupt run, or (into_clean) the reverse."""
    source, target = (task.corrupt_tokens, task.clean_tokens) if into_clean else (task.clean_tokens, task.corrupt_tokens)
    with torch.no_grad():
        _, cache = model.run_with_cache(source)
        return fn(model, target, cache, task.metric)


# Every site against transformer_lens.patching, on this architecture and each Hugging Face family:
# tests/families/test_patching_families.py (its "teaching" row is `random_model`).


def test_resid_pre_on_ioi_prompts_matches_transformer_lens(random_model):
    task = ioi(random_model, n=2, seed=1)
    expected = reference(tlp.get_act_patch_resid_pre, random_model, task)
    ours = activation_patch(random_model, task, site="resid_pre", normalize=False, progress=False)
    torch.testing.assert_close(ours.values, expected.cpu(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("fn, site, by", [(tlp.get_act_patch_resid_mid, "resid_mid", "position"),
                                          (tlp.get_act_patch_attn_head_out_all_pos, "z", "head")])
def test_patching_into_clean_matches_transformer_lens_with_clean_and_corrupt_swapped(random_model, tiny, fn, site, by):
    expected = reference(fn, random_model, tiny, into_clean=True)
    ours = activation_patch(random_model, tiny, site=site, by=by, patch_into="clean", normalize=False, progress=False)
    torch.testing.assert_close(ours.values, expected.cpu(), atol=1e-4, rtol=0)


def test_patching_a_whole_layer_normalizes_to_one_into_corrupt_and_zero_into_clean(random_model, tiny):
    """Replacing all of resid_pre at any layer reproduces the source run exactly."""
    denoised = activation_patch(random_model, tiny, site="resid_pre", by="layer", progress=False)
    noised = activation_patch(random_model, tiny, site="resid_pre", by="layer", patch_into="clean", progress=False)
    torch.testing.assert_close(denoised.values, torch.ones(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(noised.values, torch.zeros(4), atol=1e-4, rtol=0)


def test_normalized_values_are_raw_values_rescaled_between_corrupt_and_clean(random_model, tiny):
    raw = activation_patch(random_model, tiny, site="attn_out", normalize=False, progress=False)
    norm = activation_patch(random_model, tiny, site="attn_out", progress=False)
    expected = (raw.values - raw.corrupt_metric) / (raw.clean_metric - raw.corrupt_metric)
    torch.testing.assert_close(norm.values, expected)


def test_a_tiny_memory_budget_only_changes_the_chunking(random_model, tiny):
    whole = activation_patch(random_model, tiny, site="v", by="head_position", normalize=False, progress=False)
    chunked = activation_patch(random_model, tiny, site="v", by="head_position", normalize=False, batch_budget_mb=0.001, progress=False)
    torch.testing.assert_close(whole.values, chunked.values, atol=1e-5, rtol=0)


@pytest.fixture
def bars(monkeypatch) -> list:
    """The progress bars the patching code opens, each with `shown` (enabled when opened) and `closed`."""
    opened = []

    class Recording(stacking.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.shown, self.closed = not self.disable, False
            opened.append(self)

        def close(self):
            self.closed = True
            super().close()

    monkeypatch.setattr(stacking, "tqdm", Recording)
    return opened


def test_the_progress_bar_is_open_and_unfinished_while_the_first_patched_forward_runs(random_model, tiny, bars):
    """The bar advances as chunks finish: when the metric first scores a forward, the bar has counted no run
    yet and is still open (consuming all chunks up front closed it before any forward)."""
    seen = []

    def metric(logits):
        seen.append((bars[-1].n, bars[-1].total, bars[-1].closed))
        return tiny.metric(logits)

    activation_patch(random_model, tiny, site="resid_pre", metric=metric, progress=True)
    n, total, closed = seen[0]
    # runs: positions 2..5 of layers 1-3, and the two corrupted positions (2, 4) of the embeddings
    assert total == 3 * 4 + 2 and n == 0 and not closed
    assert bars[-1].closed and bars[-1].n == total


def test_progress_left_unset_follows_the_configured_setting(random_model, tiny, bars):
    for setting in (False, True):
        with config.scoped(progress=setting):
            activation_patch(random_model, tiny, site="attn_out", by="layer")
    assert [bar.shown for bar in bars] == [False, True]


def test_a_sweep_of_cells_that_cannot_change_the_run_reports_the_base_metric_without_patched_forwards(random_model, tiny):
    """With clean = corrupt every position precedes the first difference: no cell runs, each is the base metric."""
    same = Task("same", tiny.clean_tokens, tiny.clean_tokens.clone(), tiny.answer_tokens, tiny.wrong_tokens)
    result = activation_patch(random_model, same, site="resid_pre", normalize=False, progress=False)
    with torch.no_grad():
        expected = float(same.metric(random_model(same.clean_tokens)))
    torch.testing.assert_close(result.values, torch.full((4, 6), expected), atol=1e-5, rtol=0)
    assert result.clean_metric == pytest.approx(expected, abs=1e-5)


def test_runs_joining_the_stacked_forward_at_their_first_edited_block_equal_full_runs(random_model, tiny):
    """Late entry (rows copied from the unedited run at blocks.L.hook_resid_pre) changes no logits."""
    assert supports_late_entry(random_model)
    edits = [ablate(random_model, spec).edits for spec in ("L2H1", "resid_pre1", "mlp3", "L0H0")]
    groups = [[], *sorted(edits, key=lambda e: Component(e[0][0]).layer)]
    with torch.no_grad():
        late, _ = stacked_forward(random_model, tiny.corrupt_tokens, groups, late_from=0)
        full, _ = stacked_forward(random_model, tiny.corrupt_tokens, groups)
        alone = [ablate(random_model, spec).run(tiny.corrupt_tokens) for spec in ("L0H0", "resid_pre1", "L2H1", "mlp3")]
    torch.testing.assert_close(late, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(late[1:], torch.stack(alone), atol=1e-5, rtol=1e-5)


def test_result_labels_dataframe_and_components_name_each_cell(random_model):
    task = ioi(random_model, n=2, seed=0)
    result = activation_patch(random_model, task, site="z", by="head_position", progress=False)
    assert result.axes == ("layer", "head", "position")
    word = random_model.tokenizer.decode([int(task.clean_tokens[0, 3])])
    assert result.labels["position"][3] == f"3: {word!r}"
    assert result.labels["layer"] == ["L0", "L1", "L2", "L3"] and result.labels["head"][1] == "H1"
    assert result.component((2, 1, 3)) == Component("blocks.2.attn.hook_z", head=1, positions=(3,))
    frame = result.to_dataframe()
    assert len(frame) == result.values.numel()
    row = frame[(frame["layer"] == 2) & (frame["head"] == 1) & (frame["position"] == 3)].iloc[0]
    assert row.value == pytest.approx(float(result.values[2, 1, 3]))
    assert row.component == "L2H1@3" and row.position_label == f"3: {word!r}"


def test_plot_draws_a_zero_centred_diverging_heatmap_with_labelled_axes(random_model, tiny):
    ax = activation_patch(random_model, tiny, site="resid_pre", progress=False).plot()
    image = ax.images[0]
    low, high = image.get_clim()
    assert low == pytest.approx(-high) and image.get_cmap().name == "RdBu"
    assert ax.get_xlabel() == "position" and ax.get_ylabel() == "layer"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["L0", "L1", "L2", "L3"]


@pytest.mark.parametrize("patch_into", ["corrupt", "clean"])
def test_intervene_without_ablation_patches_like_the_sweep_and_reports_top_tokens(random_model, tiny, patch_into):
    result = activation_patch(random_model, tiny, site="z", by="head_position", patch_into=patch_into, normalize=False,
                              progress=False)
    outcome = result.intervene([(1, 2, 4)])
    assert outcome.ablation is None and outcome.base == patch_into
    assert outcome.metric_before == pytest.approx(result.corrupt_metric if patch_into == "corrupt" else result.clean_metric)
    assert outcome.metric_after == pytest.approx(float(result.values[1, 2, 4]), abs=1e-4)
    assert len(outcome.top_after) == 5 and all(isinstance(t, str) and 0 <= p <= 1 for t, p in outcome.top_after)
    both = result.intervene([(1, 2, 4), (3, 0, 5)])
    assert both.components == ["L1H2@4", "L3H0@5"]


def test_intervene_ablations_run_on_the_clean_prompts(random_model, tiny):
    result = activation_patch(random_model, tiny, site="z", by="head", progress=False)
    zero = result.intervene([(0, 1)], ablation="zero")
    mean = result.intervene([(0, 1)], ablation="mean")
    assert zero.base == mean.base == "clean" and zero.metric_before == pytest.approx(result.clean_metric)
    assert zero.metric_after != pytest.approx(zero.metric_before) and mean.metric_after != pytest.approx(zero.metric_after)
    with pytest.raises(ValueError, match="ablation must be None"):
        result.intervene([(0, 1)], ablation="patch")
    assert count_hooks(random_model) == 0


def test_bad_input_raises_clear_errors_and_leaves_the_model_untouched(random_model, tiny):
    with torch.no_grad():
        before = random_model(tiny.clean_tokens)
    mismatched = SimpleNamespace(clean_tokens=tiny.clean_tokens, corrupt_tokens=tiny.corrupt_tokens[:, :5], metric=tiny.metric)
    with pytest.raises(ValueError, match="same shape"):
        activation_patch(random_model, mismatched)
    with pytest.raises(ValueError, match="Did you mean 'resid_pre'"):
        activation_patch(random_model, tiny, site="resid_pr")
    with pytest.raises(ValueError, match="by='head' does not apply to site 'resid_pre'"):
        activation_patch(random_model, tiny, site="resid_pre", by="head")
    with pytest.raises(ValueError, match="must return one number for the whole batch"):
        activation_patch(random_model, tiny, metric=lambda logits: tiny.metric(logits, reduce=False))
    with pytest.raises(ValueError, match="patch_into must be 'corrupt'"):
        activation_patch(random_model, tiny, patch_into="forwards")
    with pytest.raises(ValueError, match="'denoising' is now patch_into='corrupt'"):
        activation_patch(random_model, tiny, patch_into="denoising")
    with pytest.raises(TypeError, match="positional"):
        activation_patch(random_model, tiny, "z")
    with pytest.raises(IndexError, match="not in a result"):
        activation_patch(random_model, tiny, site="z", progress=False).component((4, 0))
    assert count_hooks(random_model) == 0
    with torch.no_grad():
        torch.testing.assert_close(random_model(tiny.clean_tokens), before)


def test_sites_missing_from_an_attention_only_model_are_refused(attn_only_model):
    task = ioi(attn_only_model, n=2, seed=0)
    with pytest.raises(ValueError, match="attention-only"):
        activation_patch(attn_only_model, task, site="mlp_out")
