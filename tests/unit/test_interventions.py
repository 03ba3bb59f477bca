"""Interventions: each ablation / steering mode against a computation from the weights, composition,
cleanup (the model is left untouched after errors), and generation under an intervention against a
hand-written decoding loop."""

from __future__ import annotations

import pytest
import torch

import interpwidgets.interventions.generation as generation_module
from interpwidgets import config
from interpwidgets.interventions import (
    Component, ablate, combine, count_hooks, generate, hooked, parse_component, patch, run_hooked, steer, steering_alpha,
)
from interpwidgets.tasks import ioi

PROMPT = "When Mary and John went to the store,"


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
        _, ablated = ablate(random_model, "L2H1", ablation="mean", reference=task.corrupt_tokens).run_with_cache(task.clean_tokens)
    z, ref = ablated["blocks.2.attn.hook_z"], reference["blocks.2.attn.hook_z"]
    torch.testing.assert_close(z[:, :, 1], ref[:, :, 1].mean(0, keepdim=True).expand_as(z[:, :, 1]))
    torch.testing.assert_close(z[:, :, [0, 2, 3]], cache["blocks.2.attn.hook_z"][:, :, [0, 2, 3]])


def test_mean_ablation_without_reference_uses_the_running_batch_mean(random_model, task):
    with torch.no_grad():
        _, ablated = ablate(random_model, "mlp1", ablation="mean").run_with_cache(task.clean_tokens)
        _, plain = random_model.run_with_cache(task.clean_tokens, names_filter="blocks.1.hook_mlp_out")
    mean = plain["blocks.1.hook_mlp_out"].mean(0, keepdim=True)
    torch.testing.assert_close(ablated["blocks.1.hook_mlp_out"], mean.expand_as(ablated["blocks.1.hook_mlp_out"]))


def test_resample_ablation_takes_each_rows_value_from_the_reference_row(random_model, task):
    with torch.no_grad():
        _, reference = random_model.run_with_cache(task.corrupt_tokens)
        _, ablated = patch(random_model, "L0H3.v", task.corrupt_tokens).run_with_cache(task.clean_tokens)
    torch.testing.assert_close(ablated["blocks.0.attn.hook_v"][:, :, 3], reference["blocks.0.attn.hook_v"][:, :, 3])


def test_resample_with_a_reference_of_another_batch_size_raises_and_cleans_up(random_model, task):
    intervention = ablate(random_model, "L0H0", ablation="resample", reference=task.corrupt_tokens[:2])
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
        steer(random_model, "resid_pre1", torch.ones(5), alpha=1.0).run(task.clean_tokens)
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
    first, second = ablate(random_model, "L1H0"), steer(random_model, "resid_pre2", direction, alpha=2.0)
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


def test_unknown_ablation_and_missing_reference_are_rejected(random_model):
    with pytest.raises(ValueError, match="Unknown ablation 'average'"):
        ablate(random_model, "L0H0", ablation="average")
    with pytest.raises(ValueError, match="needs `reference`"):
        ablate(random_model, "L0H0", ablation="resample")


# ---- generation ------------------------------------------------------------------------------------------
def decode_by_hand(model, tokens, n_new, hooks=(), pick=lambda logits: int(logits.argmax())) -> list[int]:
    """The decoding loop written out: rerun the whole sequence with `hooks`, append `pick(last logits)`."""
    sequence, new = tokens, []
    with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
        while len(new) < n_new:
            new.append(pick(model(sequence)[0, -1].float()))
            sequence = torch.cat([sequence, sequence.new_tensor([[new[-1]]])], dim=1)
    return new


def test_greedy_generation_is_the_argmax_loop_with_and_without_an_intervention(random_model):
    """Greedy `generate` equals a hand-written argmax loop, also under a steering vector added by the test's own hook."""
    tokens = random_model.to_tokens(PROMPT)
    vector = 6.0 * torch.randn(random_model.cfg.d_model, generator=torch.Generator().manual_seed(3))
    assert generate(random_model, tokens, max_new_tokens=5) == decode_by_hand(random_model, tokens, 5)
    steered = generate(random_model, tokens, intervention=steer(random_model, "resid_post1", vector), max_new_tokens=5)
    assert steered == decode_by_hand(random_model, tokens, 5, [("blocks.1.hook_resid_post", lambda x, hook: x + vector)])
    assert steered != decode_by_hand(random_model, tokens, 5)
    assert count_hooks(random_model) == 0


def test_sampling_draws_from_the_tempered_softmax_with_a_generator_seeded_per_call(random_model):
    """Sampled `generate` equals drawing from softmax(logits / T) with a CPU generator seeded with `seed`; a new
    seed gives another text and the same seed the same one."""
    tokens = random_model.to_tokens(PROMPT)

    def sampled_by_hand(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return decode_by_hand(random_model, tokens, 6, pick=lambda logits: int(
            torch.multinomial(torch.softmax(logits.cpu() / 2.0, dim=-1), 1, generator=generator)))

    first = generate(random_model, tokens, max_new_tokens=6, temperature=2.0, seed=11)
    assert first == sampled_by_hand(11) == generate(random_model, tokens, max_new_tokens=6, temperature=2.0, seed=11)
    assert any(generate(random_model, tokens, max_new_tokens=6, temperature=2.0, seed=s) != first for s in (1, 2))


class WithEndOfText:
    """`model` as `generate` sees it, with a tokenizer whose end-of-text token is `eos`."""

    def __init__(self, model, eos: int) -> None:
        self.model, self.cfg, self.tokenizer = model, model.cfg, type("Tokenizer", (), {"eos_token_id": eos})()

    def __call__(self, tokens):
        return self.model(tokens)

    def parameters(self):
        return self.model.parameters()


def test_generation_stops_after_the_end_of_text_token_and_at_the_context_length(random_model):
    """The end-of-text token is kept and ends the text; a prompt two tokens short of the context gets two tokens."""
    tokens = random_model.to_tokens(PROMPT)
    greedy = decode_by_hand(random_model, tokens, 6)
    assert generate(WithEndOfText(random_model, greedy[2]), tokens, max_new_tokens=6) == greedy[: greedy.index(greedy[2]) + 1]
    almost_full = torch.randint(1, random_model.cfg.d_vocab, (1, random_model.cfg.n_ctx - 2), generator=torch.Generator().manual_seed(0))
    assert len(generate(random_model, almost_full, max_new_tokens=5)) == 2
    assert generate(random_model, tokens[0], max_new_tokens=0) == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"max_new_tokens": -1}, "max_new_tokens"),
    ({"tokens": torch.zeros(2, 3, dtype=torch.long)}, "shape \\[1, n\\]"),
    ({"tokens": torch.zeros(1, 3)}, "integer ids"),
])
def test_generate_refuses_bad_arguments(random_model, kwargs, match):
    arguments = {"tokens": random_model.to_tokens(PROMPT), **kwargs}
    with pytest.raises(ValueError, match=match):
        generate(random_model, arguments.pop("tokens"), **arguments)


@pytest.mark.parametrize(("setting", "argument", "disabled"), [
    (True, None, False), (False, None, True), (False, True, False), (True, False, True),
])
def test_generation_progress_follows_iw_config_unless_given(random_model, monkeypatch, setting, argument, disabled):
    """The progress bar is on or off as `progress=` says, else as `iw.config.progress` says."""
    bars = []
    real = generation_module.tqdm
    monkeypatch.setattr(generation_module, "tqdm", lambda **kwargs: bars.append(kwargs) or real(**kwargs))
    with config.scoped(progress=setting):
        generate(random_model, random_model.to_tokens(PROMPT), max_new_tokens=1, progress=argument)
    assert [bar["disable"] for bar in bars] == [disabled] and bars[0]["delay"] >= 1.0


# ---- how large a steering alpha is -------------------------------------------------------------------------
@pytest.mark.parametrize(("target", "hook", "width", "select"), [
    ("resid_post1", "blocks.1.hook_resid_post", 128, lambda act: act),
    ("L2H1", "blocks.2.attn.hook_z", 32, lambda act: act[:, :, 1]),
])
def test_steering_alpha_adds_ratio_times_the_typical_activation_norm(random_model, task, target, hook, width, select):
    """Steering by `steering_alpha(..., ratio=r)` changes the activation by a vector r times the mean norm of that
    activation (norms measured here from a cache), at every position."""
    tokens = task.clean_tokens
    direction = torch.randn(width, generator=torch.Generator().manual_seed(4))
    alpha = steering_alpha(random_model, tokens, target, direction, ratio=1.5)
    with torch.no_grad():
        _, cache = random_model.run_with_cache(tokens, names_filter=[hook])
        seen = []
        with steer(random_model, target, direction, alpha=alpha), random_model.hooks(fwd_hooks=[(hook, lambda x, hook: seen.append(x.clone()))]):
            random_model(tokens)
    typical = select(cache[hook]).norm(dim=-1).mean()
    added = (select(seen[0]) - select(cache[hook])).norm(dim=-1)  # [batch, seq]
    torch.testing.assert_close(added, torch.full_like(added, 1.5 * float(typical)), rtol=1e-4, atol=1e-4)


def test_steering_alpha_refuses_zero_and_wrong_sized_directions(random_model, task):
    with pytest.raises(ValueError, match="nonzero"):
        steering_alpha(random_model, task.clean_tokens, "resid_post1", torch.zeros(128))
    with pytest.raises(ValueError, match="width"):
        steering_alpha(random_model, task.clean_tokens, "resid_post1", torch.ones(3))
    with pytest.raises(ValueError, match="names a neuron"):
        steering_alpha(random_model, task.clean_tokens, "L1N3", torch.ones(1))
