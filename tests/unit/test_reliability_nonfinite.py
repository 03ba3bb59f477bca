"""No silent non-finite numbers: a metric, an activation, a gradient or an SAE output that is NaN or inf stops
the engine function with a `NonFiniteError` saying where it appeared (which cell, site, hook, layer or component).

Faults are injected from outside the code under test: a metric written here, or a forward hook written here that
puts one NaN/inf into one activation."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits.feature_circuit import feature_circuit
from interpwidgets.interventions.hooks import count_hooks
from interpwidgets.sae import SAEConfig, build_sae
from interpwidgets.sae.sets import SAESet
from interpwidgets.sae.trainer import NonFiniteActivationsError
from interpwidgets.tasks.metric import NonFiniteError, check_finite

NAN, INF = float("nan"), float("inf")


def random_saes(model, d_sae: int = 16) -> SAESet:
    hooks = ("hook_resid_post", "hook_attn_out", "hook_mlp_out")
    saes = SAESet()
    for layer in range(model.cfg.n_layers):
        for i, name in enumerate(hooks):
            hook = f"blocks.{layer}.{name}"
            saes[hook] = build_sae(SAEConfig(d_in=model.cfg.d_model, d_sae=d_sae, hook_name=hook), seed=10 * layer + i)
    return saes


@pytest.fixture(scope="module")
def saes(random_model):
    return random_saes(random_model)


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=2, seed=0)


def undefined_gradient_metric(task):
    """The task's logit difference, finite in value, but with a NaN gradient: a `torch.where` branch not taken
    whose sqrt of a negative number still sends 0 * NaN backwards (a classic way to get silent NaN effects)."""
    def metric(logits):
        p = logits[:, -1].softmax(-1).max()
        return torch.where(p > 2, torch.sqrt(p - 2), task.metric(logits))
    return metric


def nan_from_call(task, n: int, value: float = NAN):
    """The task's metric, returning `value` from its `n`-th call on."""
    calls = [0]

    def metric(logits):
        calls[0] += 1
        out = task.metric(logits)
        return out * value if calls[0] >= n else out
    return metric


def writes(value: float, *, prompt: int = 0, position: int = 3, unit: int = 5):
    """A forward hook putting `value` into one entry of its activation (when the batch has that entry)."""
    def hook(x, hook):
        if x.shape[0] <= prompt or x.shape[1] <= position:
            return x
        x = x.clone()
        x[prompt, position, unit] = value
        return x
    return hook


def test_check_finite_names_where_and_the_first_bad_index():
    """The shared check: a clean tensor passes through unchanged; a bad one is refused with its place and index."""
    x = torch.zeros(2, 4, 3)
    assert check_finite(x, "x") is x
    x[1, 2, 0] = INF
    with pytest.raises(NonFiniteError, match=r"The thing holds inf at \[prompt 1, position 2, 0\] \(1 of 24"):
        check_finite(x, "The thing", dims=("prompt", "position"))


@pytest.mark.parametrize("method", ["atp", "ig"])
def test_feature_circuit_refuses_a_metric_with_an_undefined_gradient(random_model, saes, task, method):
    """Used to run to the end and return an empty circuit ("the largest effect is nan"); now it names the site."""
    with pytest.raises(NonFiniteError, match=r"gradient at site resid_post\d \(blocks\.\d\.hook_resid_post\)"):
        feature_circuit(random_model, saes, task, method=method, steps=2, metric=undefined_gradient_metric(task),
                        edges=False, progress=False)
    assert count_hooks(random_model) == 0


def test_feature_circuit_refuses_a_metric_that_turns_nan_in_integrated_gradients(random_model, saes, task):
    """Calls 1-2 are the clean and patch passes; the 3rd is the first integrated-gradient pass: named by site and alpha."""
    with pytest.raises(NonFiniteError, match=r"metric at alpha [\d.]+ of site \w+'s integrated gradients returned nan"):
        feature_circuit(random_model, saes, task, method="ig", steps=2, metric=nan_from_call(task, 3), progress=False)


def test_feature_circuit_names_the_first_site_a_nan_activation_reaches(random_model, saes, task):
    """NaN written into blocks.1.hook_resid_mid: the first SAE site after it in forward order is mlp1."""
    with random_model.hooks(fwd_hooks=[("blocks.1.hook_resid_mid", writes(NAN))]):
        with pytest.raises(NonFiniteError, match=r"activation at site mlp1 \(blocks\.1\.hook_mlp_out\) holds nan at \[prompt 0, position 3"):
            feature_circuit(random_model, saes, task, method="atp", progress=False)


def test_activation_patch_names_the_cell_whose_metric_is_nan(random_model, task):
    """Calls 1-2 score the clean and corrupt runs, the 3rd the first cell patched."""
    with pytest.raises(NonFiniteError, match=r"metric with \S+ patched returned nan"):
        iw.patching.activation_patch(random_model, task, site="resid_pre", metric=nan_from_call(task, 3), progress=False)
    with pytest.raises(NonFiniteError, match=r"metric on the corrupt prompts returned -?inf"):  # inf times the metric's sign
        iw.patching.activation_patch(random_model, task, site="resid_pre", metric=nan_from_call(task, 2, INF), progress=False)


def test_path_patch_names_the_senders_whose_metric_is_nan(random_model, task):
    with pytest.raises(NonFiniteError, match=r"metric with L\d+H\d+ path-patched returned nan"):
        iw.patching.path_patch(random_model, task, senders="heads", receivers="logits", metric=nan_from_call(task, 3),
                               progress=False)


@pytest.mark.parametrize("method", ["atp", "ig"])
def test_attribution_patch_names_the_hook_with_a_nan_gradient(random_model, task, method):
    """Used to return a result with NaN cells and no word; now it names the hook (and the alpha for IG)."""
    with pytest.raises(NonFiniteError, match=r"gradient at blocks\.\d\.attn\.hook_z"):
        iw.patching.attribution_patch(random_model, task, site="z", method=method, steps=2,
                                      metric=undefined_gradient_metric(task), progress=False)
    assert count_hooks(random_model) == 0


def test_logit_lens_names_the_first_layer_with_a_nan_residual(random_model):
    tokens = torch.arange(1, 9)[None]
    with random_model.hooks(fwd_hooks=[("blocks.1.hook_resid_mid", writes(INF, position=2))]):
        with pytest.raises(NonFiniteError, match=r"residual stream at blocks\.2\.hook_resid_pre holds \S+ at \[position 2"):
            iw.lens.logit_lens(random_model, tokens, progress=False)


def test_dla_names_the_first_component_that_wrote_a_nan(random_model, task):
    """NaN in layer 1's MLP output at the last position: embed, pos_embed, layer 0 and layer 1's heads come before mlp1."""
    last = task.clean_tokens.shape[1] - 1
    with random_model.hooks(fwd_hooks=[("blocks.1.hook_mlp_out", writes(NAN, position=last))]):
        with pytest.raises(NonFiniteError, match=r"direct contribution of mlp1 at the last position"):
            iw.lens.direct_logit_attribution(random_model, task, progress=False)


def test_feature_activations_names_the_hook_or_the_feature(random_model):
    tokens = torch.arange(1, 9)
    hook = "blocks.1.hook_resid_post"
    sae = build_sae(SAEConfig(d_in=random_model.cfg.d_model, d_sae=16, hook_name=hook), seed=0)
    with random_model.hooks(fwd_hooks=[(hook, writes(NAN, position=4))]):
        with pytest.raises(NonFiniteError, match=r"activation at blocks\.1\.hook_resid_post \(the input of its SAE\) holds nan at \[position 4"):
            iw.sae.feature_activations(random_model, sae, tokens)
    broken = build_sae(sae.cfg, seed=0)
    with torch.no_grad():
        broken.W_enc[:, 7] = INF
    with pytest.raises(NonFiniteError, match=r"output of the SAE at blocks\.1\.hook_resid_post .* at \[position 0, feature 7\]"):
        iw.sae.feature_activations(random_model, broken, tokens)


def test_evaluate_names_the_hook(random_model):
    hook = "blocks.0.hook_resid_post"
    sae = build_sae(SAEConfig(d_in=random_model.cfg.d_model, d_sae=16, hook_name=hook), seed=0)
    tokens = torch.randint(1, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    with random_model.hooks(fwd_hooks=[(hook, writes(NAN, prompt=1, position=2))]):
        with pytest.raises(NonFiniteError, match=r"activation at blocks\.0\.hook_resid_post .* holds nan at \[token 10,"):
            iw.sae.evaluate(random_model, sae, tokens, batch_size=2)
    assert count_hooks(random_model) == 0


def test_training_names_the_hook_of_nan_activations(random_model, tmp_path):
    hook = "blocks.0.hook_resid_post"
    tokens = torch.randint(1, 50, (8, 8), generator=torch.Generator().manual_seed(0))
    def every_prompt(x, hook):  # the shuffling buffer may leave any single row out of the first batch
        return torch.where(torch.arange(x.shape[1])[None, :, None] == 3, NAN, x) if x.shape[1] > 3 else x

    with random_model.hooks(fwd_hooks=[(hook, every_prompt)]):
        with pytest.raises(NonFiniteActivationsError, match=r"from blocks\.0\.hook_resid_post at training step 0"):
            iw.sae.train(random_model, hook, tokens, architecture="relu", d_sae=16, total_tokens=64, batch_size=32,
                         buffer_tokens=64, checkpoint_dir=tmp_path, progress=False)
    assert issubclass(NonFiniteActivationsError, NonFiniteError)
