"""Interventions: each ablation / steering mode against a computation from the weights, composition,
and cleanup (the model is left untouched after errors)."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.interventions import (
    Component, ablate, combine, count_hooks, hooked, parse_component, patch, run_hooked, steer,
)
from interpwidgets.tasks import ioi


@pytest.fixture(scope="module")
def task(random_model):
    return ioi(random_model, n=3, seed=0)


@pytest.fixture(scope="module")
def clean(random_model, task):
    with torch.no_grad():
        return random_model.run_with_cache(task.clean_tokens)


def test_short_names_parse_to_the_hook_points_they_name():
    assert parse_component("L1H2") == Component("blocks.1.attn.hook_z", head=2)
    assert parse_component("l1h2.q") == Component("blocks.1.attn.hook_q", head=2)
    assert parse_component("L3N7") == Component("blocks.3.mlp.hook_post", neuron=7)
    assert parse_component("mlp3") == Component("blocks.3.hook_mlp_out")
    assert parse_component("attn0") == Component("blocks.0.hook_attn_out")
    assert parse_component("resid_mid2") == Component("blocks.2.hook_resid_mid")
    assert parse_component("embed") == Component("hook_embed")
    assert parse_component((1, 2)) == Component("blocks.1.attn.hook_z", head=2)
    assert [parse_component(s).label for s in ("L1H2", "L1H2.q", "L3N7", "mlp3")] == ["L1H2", "L1H2.q", "L3N7", "mlp3"]
    assert Component("blocks.2.hook_resid_pre").at([4, 5]).label == "resid_pre2@4,5"


def test_unknown_names_and_out_of_range_indices_raise_helpful_errors(random_model):
    with pytest.raises(ValueError, match="mlp3"):
        parse_component("mpl3", random_model)
    with pytest.raises(ValueError, match="hook_resid_pre"):
        parse_component("blocks.0.hook_resid_pree", random_model)
    with pytest.raises(ValueError, match="layer 7 is out of range; the model has 4 layers"):
        parse_component("L7H0", random_model)
    with pytest.raises(ValueError, match="head 9 is out of range; the model has 4 heads"):
        parse_component("L1H9", random_model)
    with pytest.raises(ValueError, match="no head axis"):
        parse_component(Component("blocks.0.hook_resid_pre", head=1), random_model)
    assert count_hooks(random_model) == 0


def test_zero_ablating_a_head_removes_exactly_its_output_from_attn_out(random_model, task, clean):
    """Reference from the weights: attn_out without head h = attn_out - z_h @ W_O[h] (layer 1, so inputs are unchanged)."""
    _, cache = clean
    expected = cache["blocks.1.hook_attn_out"] - cache["blocks.1.attn.hook_z"][:, :, 2] @ random_model.blocks[1].attn.W_O[2]
    with torch.no_grad():
        _, ablated = ablate(random_model, "L1H2").run_with_cache(task.clean_tokens)
    torch.testing.assert_close(ablated["blocks.1.hook_attn_out"], expected, atol=1e-5, rtol=1e-5)


def test_mean_ablation_sets_the_head_to_the_reference_mean_at_each_position(random_model, task, clean):
    _, cache = clean
    with torch.no_grad():
        _, reference = random_model.run_with_cache(task.corrupt_tokens)
        _, ablated = ablate(random_model, "L2H1", "mean", task.corrupt_tokens).run_with_cache(task.clean_tokens)
    z, ref = ablated["blocks.2.attn.hook_z"], reference["blocks.2.attn.hook_z"]
    torch.testing.assert_close(z[:, :, 1], ref[:, :, 1].mean(0, keepdim=True).expand_as(z[:, :, 1]))
    torch.testing.assert_close(z[:, :, [0, 2, 3]], cache["blocks.2.attn.hook_z"][:, :, [0, 2, 3]])


def test_mean_ablation_without_reference_uses_the_running_batch_mean(random_model, task):
    with torch.no_grad():
        _, ablated = ablate(random_model, "mlp1", "mean").run_with_cache(task.clean_tokens)
        _, plain = random_model.run_with_cache(task.clean_tokens, names_filter="blocks.1.hook_mlp_out")
    mean = plain["blocks.1.hook_mlp_out"].mean(0, keepdim=True)
    torch.testing.assert_close(ablated["blocks.1.hook_mlp_out"], mean.expand_as(ablated["blocks.1.hook_mlp_out"]))


def test_resample_ablation_takes_each_rows_value_from_the_reference_row(random_model, task):
    with torch.no_grad():
        _, reference = random_model.run_with_cache(task.corrupt_tokens)
        _, ablated = patch(random_model, "L0H3.v", task.corrupt_tokens).run_with_cache(task.clean_tokens)
    torch.testing.assert_close(ablated["blocks.0.attn.hook_v"][:, :, 3], reference["blocks.0.attn.hook_v"][:, :, 3])


def test_resample_with_a_reference_of_another_batch_size_raises_and_cleans_up(random_model, task):
    intervention = ablate(random_model, "L0H0", "resample", task.corrupt_tokens[:2])
    with pytest.raises(ValueError, match="same \\[batch, seq\\]"):
        intervention.run(task.clean_tokens)
    assert count_hooks(random_model) == 0


def test_zero_ablating_a_neuron_removes_its_write_through_w_out(random_model, task, clean):
    _, cache = clean
    post = cache["blocks.1.mlp.hook_post"][..., 7]
    expected = cache["blocks.1.hook_mlp_out"] - post[..., None] * random_model.blocks[1].mlp.W_out[7]
    with torch.no_grad():
        _, ablated = ablate(random_model, "L1N7").run_with_cache(task.clean_tokens)
    torch.testing.assert_close(ablated["blocks.1.hook_mlp_out"], expected, atol=1e-5, rtol=1e-5)


def test_direction_ablation_removes_the_projection_and_keeps_the_orthogonal_part(random_model, task, clean):
    _, cache = clean
    direction = torch.randn(random_model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    unit = direction / direction.norm()
    component = Component("blocks.2.hook_resid_pre", direction=direction)
    with torch.no_grad():
        _, ablated = ablate(random_model, component).run_with_cache(task.clean_tokens)
    before, after = cache["blocks.2.hook_resid_pre"], ablated["blocks.2.hook_resid_pre"]
    torch.testing.assert_close(after @ unit, torch.zeros_like(after @ unit), atol=1e-5, rtol=0)
    torch.testing.assert_close(after, before - (before @ unit)[..., None] * unit, atol=1e-5, rtol=1e-5)


def test_ablation_at_chosen_positions_leaves_earlier_positions_unchanged(random_model, task, clean):
    logits, _ = clean
    with torch.no_grad():
        ablated = ablate(random_model, "resid_pre1", positions=[5]).run(task.clean_tokens)
    torch.testing.assert_close(ablated[:, :5], logits[:, :5])
    assert (ablated[:, 5:] - logits[:, 5:]).abs().amax(-1).min() > 1e-3


def test_resid_mid_ablation_changes_the_residual_stream_not_only_the_mlp_input(random_model, task):
    """On the bridge hook_resid_mid is ln2's input; the skip connection must be ablated too."""
    with torch.no_grad():
        _, cache = ablate(random_model, "resid_mid1", positions=[3]).run_with_cache(task.clean_tokens)
    skip = cache["blocks.1.hook_resid_post"][:, 3] - cache["blocks.1.hook_mlp_out"][:, 3]
    torch.testing.assert_close(skip, torch.zeros_like(skip), atol=1e-5, rtol=0)


def test_steering_the_final_residual_equals_unembedding_the_shifted_residual(random_model, task, clean):
    logits, cache = clean
    direction = torch.randn(random_model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    last = f"blocks.{random_model.cfg.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        steered = steer(random_model, last, direction, alpha=3.0, positions=[-1]).run(task.clean_tokens)
        expected = random_model.unembed(random_model.ln_final(cache[last][:, -1:] + 3.0 * direction))
    torch.testing.assert_close(steered[:, :-1], logits[:, :-1])
    torch.testing.assert_close(steered[:, -1:], expected, atol=1e-4, rtol=1e-4)


def test_steering_with_a_wrong_sized_direction_raises_and_cleans_up(random_model, task):
    with pytest.raises(ValueError, match="pass a \\[128\\] vector"):
        steer(random_model, "resid_pre1", torch.ones(5), 1.0).run(task.clean_tokens)
    assert count_hooks(random_model) == 0


def test_context_manager_and_one_shot_run_agree_and_remove_their_hooks(random_model, task, clean):
    intervention = ablate(random_model, ["L0H1", "mlp2"], positions=[2, 4])
    with torch.no_grad():
        with intervention:
            assert count_hooks(random_model) == 2
            inside = random_model(task.clean_tokens)
        once = intervention.run(task.clean_tokens)
        after = random_model(task.clean_tokens)
    torch.testing.assert_close(inside, once)
    torch.testing.assert_close(after, clean[0])
    assert count_hooks(random_model) == 0


def test_nesting_interventions_equals_combining_them(random_model, task):
    direction = torch.randn(random_model.cfg.d_model, generator=torch.Generator().manual_seed(2))
    first, second = ablate(random_model, "L1H0"), steer(random_model, "resid_pre2", direction, 2.0)
    with torch.no_grad():
        with first, second:
            nested = random_model(task.clean_tokens)
        combined = combine(first, second).run(task.clean_tokens)
        added = (first + second).run(task.clean_tokens)
    torch.testing.assert_close(nested, combined)
    torch.testing.assert_close(nested, added)


def test_after_an_exception_inside_an_intervention_the_model_outputs_equal_the_clean_ones(random_model, task, clean):
    with pytest.raises(RuntimeError, match="boom"):
        with ablate(random_model, "L2H2"):
            random_model(task.clean_tokens)
            raise RuntimeError("boom")

    def failing(act, hook):
        raise RuntimeError("hook failed mid-forward")

    with pytest.raises(RuntimeError, match="hook failed"):
        with ablate(random_model, "mlp0"):
            run_hooked(random_model, task.clean_tokens, [("blocks.1.hook_resid_pre", failing)])
    assert count_hooks(random_model) == 0
    with torch.no_grad():
        torch.testing.assert_close(random_model(task.clean_tokens), clean[0])


def test_a_misspelt_hook_in_a_hook_list_attaches_nothing(random_model):
    with pytest.raises(ValueError, match="Did you mean 'blocks.1.hook_resid_pre'"):
        with hooked(random_model, [("blocks.0.hook_resid_pre", lambda a, hook: a), ("blocks.1.hook_resid_pree", lambda a, hook: a)]):
            pass
    assert count_hooks(random_model) == 0


def test_unknown_ablation_mode_and_missing_reference_are_rejected(random_model):
    with pytest.raises(ValueError, match="Unknown ablation mode 'average'"):
        ablate(random_model, "L0H0", "average")
    with pytest.raises(ValueError, match="needs `reference`"):
        ablate(random_model, "L0H0", "resample")
