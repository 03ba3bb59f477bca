"""Interrupt safety: Ctrl-C (a `KeyboardInterrupt`) raised in the middle of each long engine operation, from the
metric or from a forward hook at a chosen step, leaves the model as it was: no hook on any hook point or module, no
SAE spliced, the same parameters' `requires_grad` and no `.grad`, and bit-identical logits. SAE training resumes from
its last complete checkpoint, which holds exactly the state an uninterrupted run had at that step."""

from __future__ import annotations

import copy

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits.faithfulness import faithfulness_curve
from interpwidgets.circuits.feature_circuit import feature_circuit
from interpwidgets.circuits.hierarchical import hierarchical_attribution
from interpwidgets.circuits.linear_graph import LinearGraph, LogitTarget, linear_graph
from interpwidgets.interventions.hooks import count_hooks
from interpwidgets.sae import SAEConfig, build_sae
from interpwidgets.sae.sets import SAESet
from interpwidgets.sae.trainer import Trainer

TOKENS = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29]])


class Interrupt:
    """Counts calls and raises KeyboardInterrupt on the `at`-th; used as a metric wrapper or as a forward hook."""

    def __init__(self, at: int, metric=None):
        self.at, self.metric, self.calls = at, metric, 0

    def _tick(self) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt(f"interrupted at call {self.at}")

    def __call__(self, x, hook=None):
        self._tick()
        return self.metric(x) if self.metric is not None else x


def model_state(model) -> dict:
    """What an operation must leave as it found: hooks on every module (hook points included), grad flags and grads."""
    modules = dict(model.named_modules())
    return {
        "hook_points": count_hooks(model),
        "module_hooks": {name: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
                         for name, m in modules.items()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "grads": [name for name, p in model.named_parameters() if p.grad is not None],
        "training": model.training,
    }


def random_saes(model, d_sae: int = 16) -> SAESet:
    saes = SAESet()
    for layer in range(model.cfg.n_layers):
        for i, name in enumerate(("hook_resid_post", "hook_attn_out", "hook_mlp_out")):
            hook = f"blocks.{layer}.{name}"
            saes[hook] = build_sae(SAEConfig(d_in=model.cfg.d_model, d_sae=d_sae, hook_name=hook), seed=10 * layer + i)
    return saes


def transcoders(model) -> SAESet:
    saes = SAESet()
    for layer in range(model.cfg.n_layers):
        cfg = SAEConfig(d_in=model.cfg.d_model, d_sae=16, hook_name=f"blocks.{layer}.ln2.hook_normalized",
                        hook_name_out=f"blocks.{layer}.hook_mlp_out")
        saes[cfg.hook_name] = build_sae(cfg, seed=layer)
        attn = SAEConfig(d_in=model.cfg.d_model, d_sae=16, hook_name=f"blocks.{layer}.hook_attn_out")
        saes[attn.hook_name] = build_sae(attn, seed=100 + layer)
    return saes


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=2, seed=0)


@pytest.fixture(scope="module")
def saes(random_model):
    return random_saes(random_model)


@pytest.fixture(scope="module")
def effects(random_model, saes, task):
    return feature_circuit(random_model, saes, task, method="atp", node_threshold=0.0, top_n=10, edges=False,
                           progress=False)


HOOK = "blocks.1.hook_resid_post"  # runs once per forward: a hook here interrupts the n-th forward


def _spliced_forward(model, task, saes, metric=None):
    with iw.sae.spliced(model, saes, error_term=True):
        model(task.clean_tokens)
        model(task.clean_tokens)  # interrupted here
    pytest.fail("not interrupted")


def _steered_generation(model, task, saes, metric=None):
    direction = torch.ones(model.cfg.d_model)
    iw.interventions.generate(model, TOKENS, intervention=iw.interventions.steer(model, "resid_post0", direction, alpha=2.0),
                              max_new_tokens=6, progress=False)


def _hierarchical(model, task, saes, metric=None):
    graph = linear_graph(model, transcoders(model), task.clean_tokens[0])
    real = LinearGraph.contribution_table
    calls = Interrupt(2)

    def contribution_table(self, output):  # interrupted in the 2nd stage of expansions
        calls(output)
        return real(self, output)

    LinearGraph.contribution_table = contribution_table
    try:
        hierarchical_attribution(graph, LogitTarget(int(task.answer_tokens[0]), int(task.wrong_tokens[0])), depth=3,
                                 threshold=0.0, progress=False)
    finally:
        LinearGraph.contribution_table = real


# (name, how it is interrupted, the operation): "metric" wraps the task's metric, "hook" adds a forward hook at HOOK
OPERATIONS = {
    "activation_patch": ("metric", 3, lambda m, t, s, metric: iw.patching.activation_patch(
        m, t, site="resid_pre", metric=metric, progress=False)),
    "activation_patch_heads": ("hook", 3, lambda m, t, s, metric: iw.patching.activation_patch(
        m, t, site="z", by="head", batch_budget_mb=0.5, progress=False)),
    "path_patch": ("metric", 3, lambda m, t, s, metric: iw.patching.path_patch(
        m, t, senders="heads", receivers="logits", metric=metric, progress=False)),
    "attribution_patch_atp": ("metric", 3, lambda m, t, s, metric: iw.patching.attribution_patch(
        m, t, site="z", method="atp", metric=metric, progress=False)),
    "attribution_patch_ig": ("metric", 4, lambda m, t, s, metric: iw.patching.attribution_patch(
        m, t, site="resid_pre", method="ig", steps=3, metric=metric, progress=False)),
    "feature_circuit_atp": ("metric", 2, lambda m, t, s, metric: feature_circuit(
        m, s, t, method="atp", metric=metric, progress=False)),
    "feature_circuit_ig": ("metric", 5, lambda m, t, s, metric: feature_circuit(
        m, s, t, method="ig", steps=2, metric=metric, progress=False)),
    "feature_circuit_edges": ("hook", 3, lambda m, t, s, metric: feature_circuit(
        m, s, t, method="atp", node_threshold=0.0, top_n=6, progress=False)),
    "faithfulness_curve": ("metric", 4, None),  # needs the effects fixture: see the test
    "linear_graph": ("hook", 2, lambda m, t, s, metric: linear_graph(m, transcoders(m), t.clean_tokens[0])),
    "hierarchical_attribution": ("none", 0, _hierarchical),
    # the 4th forward is the second bias-only pass (every other bias zeroed for it), the 12th the logit rows' pass
    "attribution_graph_bias_pass": ("hook", 4, lambda m, t, s, metric: iw.circuits.attribution_graph(
        m, transcoders(m), t.clean_tokens[0], progress=False)),
    "attribution_graph_rows": ("hook", 12, lambda m, t, s, metric: iw.circuits.attribution_graph(
        m, transcoders(m), t.clean_tokens[0], progress=False)),
    "generate_steered": ("hook", 4, _steered_generation),
    "spliced": ("hook", 2, _spliced_forward),
    "sae_evaluate": ("hook", 3, lambda m, t, s, metric: iw.sae.evaluate(m, s[HOOK], t.clean_tokens, batch_size=1)),
    "logit_lens": ("hook", 1, lambda m, t, s, metric: iw.lens.logit_lens(m, TOKENS, progress=False)),
    "direct_logit_attribution": ("hook", 1, lambda m, t, s, metric: iw.lens.direct_logit_attribution(
        m, t, progress=False)),
    "dla_intervene": ("hook", 2, lambda m, t, s, metric: iw.lens.direct_logit_attribution(
        m, t, progress=False).intervene(["L1H0"])),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_an_interrupt_leaves_the_model_as_it_was(random_model, task, saes, effects, name):
    how, at, operation = OPERATIONS[name]
    if name == "faithfulness_curve":
        def operation(m, t, s, metric):
            return faithfulness_curve(m, s, t, effects, sizes=[1, 3, 6, 10], metric=metric, progress=False)
    before_logits = random_model(task.clean_tokens)
    before = model_state(random_model)
    interrupt = Interrupt(at, task.metric if how == "metric" else None)
    metric = interrupt if how == "metric" else None
    with pytest.raises(KeyboardInterrupt):
        if how == "hook":
            with random_model.hooks(fwd_hooks=[(HOOK, interrupt)]):
                operation(random_model, task, saes, metric)
        else:
            operation(random_model, task, saes, metric)
    assert how == "none" or interrupt.calls == at  # interrupted where chosen, not earlier (a bad test) or later
    assert model_state(random_model) == before
    assert torch.equal(random_model(task.clean_tokens), before_logits)


def test_sae_training_interrupted_resumes_from_the_last_complete_checkpoint(random_model, tmp_path, monkeypatch):
    """Ctrl-C in the 5th forward of the model: the checkpoint on disk is the state at step 4 of an uninterrupted run,
    and training again with the same folder finishes from there."""
    options = dict(architecture="relu", d_sae=16, total_tokens=32 * 12, batch_size=32, buffer_tokens=64,
                   checkpoint_every=2, model_batch_size=4, progress=False)
    tokens = torch.randint(1, 50, (16, 8), generator=torch.Generator().manual_seed(0))
    states, real_save = {}, Trainer.save_checkpoint

    def recording(self, folder):
        states[self.step_count] = copy.deepcopy(self.sae.state_dict())
        return real_save(self, folder)

    monkeypatch.setattr(Trainer, "save_checkpoint", recording)
    iw.sae.train(random_model, HOOK, tokens, checkpoint_dir=tmp_path / "reference", **options)
    monkeypatch.setattr(Trainer, "save_checkpoint", real_save)

    before_logits, before = random_model(TOKENS), model_state(random_model)
    with pytest.raises(KeyboardInterrupt), random_model.hooks(fwd_hooks=[(HOOK, Interrupt(6))]):  # the probe + 5 batches
        iw.sae.train(random_model, HOOK, tokens, checkpoint_dir=tmp_path / "run", **options)
    assert model_state(random_model) == before and torch.equal(random_model(TOKENS), before_logits)
    saved = Trainer.from_checkpoint(tmp_path / "run")
    assert saved.step_count > 0 and saved.step_count % 2 == 0
    for key, value in states[saved.step_count].items():
        assert torch.equal(saved.sae.state_dict()[key], value), key
    iw.sae.train(random_model, HOOK, tokens, checkpoint_dir=tmp_path / "run", **options)
    assert Trainer.from_checkpoint(tmp_path / "run").step_count == 12
