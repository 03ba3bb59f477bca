"""Input checks, the clean and corrupt reference runs, and metric normalization shared by all patching methods."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch

from interpwidgets.models.device import device_of
from interpwidgets.tasks.base import Task
from interpwidgets.tasks.metric import Metric, check_metric, rescale

PatchInto = Literal["corrupt", "clean"]
PATCH_INTO: tuple[PatchInto, ...] = ("corrupt", "clean")


def source_of(patch_into: PatchInto) -> PatchInto:
    """The run whose activations are patched into the `patch_into` run: the other one."""
    return "clean" if patch_into == "corrupt" else "corrupt"


@dataclass
class Baseline:
    """The unpatched clean and corrupt runs: metrics, activations at the hooks a method reads
    (hook name -> [batch, ...]), and the first prompt's last-position logits [vocab]."""

    clean_metric: float
    corrupt_metric: float
    clean: dict[str, torch.Tensor]
    corrupt: dict[str, torch.Tensor]
    clean_last_logits: torch.Tensor
    corrupt_last_logits: torch.Tensor

    def metric_of(self, run: PatchInto) -> float:
        return self.clean_metric if run == "clean" else self.corrupt_metric

    def last_logits_of(self, run: PatchInto) -> torch.Tensor:
        return self.clean_last_logits if run == "clean" else self.corrupt_last_logits

    def base_and_source(self, patch_into: PatchInto) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(the activations of the run patched into, those patched in): (corrupt, clean) for patch_into="corrupt"."""
        return (self.corrupt, self.clean) if patch_into == "corrupt" else (self.clean, self.corrupt)


def check_task(model, task) -> None:
    """Raise a ValueError if the task's tokens do not fit the model or each other."""
    clean, corrupt = getattr(task, "clean_tokens", None), getattr(task, "corrupt_tokens", None)
    if not isinstance(clean, torch.Tensor) or not isinstance(corrupt, torch.Tensor):
        raise TypeError("task must have clean_tokens and corrupt_tokens tensors (see interpwidgets.tasks.Task).")
    if clean.ndim != 2 or clean.shape != corrupt.shape:
        raise ValueError(
            f"clean_tokens {tuple(clean.shape)} and corrupt_tokens {tuple(corrupt.shape)} must both be "
            "[batch, seq] of the same shape: patching swaps activations position by position. "
            "Build clean and corrupt prompts that tokenize to the same length."
        )
    if clean.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"Prompts of {clean.shape[1]} tokens exceed the model's context of {model.cfg.n_ctx}.")
    top = int(max(clean.max(), corrupt.max()))
    if top >= model.cfg.d_vocab:
        raise ValueError(f"Token id {top} is out of the model's vocabulary ({model.cfg.d_vocab}); was the task built for another model?")


def check_patch_into(patch_into: str) -> None:
    if patch_into not in PATCH_INTO:
        hint = {"denoising": " ('denoising' is now patch_into='corrupt')", "noising": " ('noising' is now patch_into='clean')"}
        raise ValueError(
            "patch_into must be 'corrupt' (clean activations patched into the corrupt run) or 'clean' (corrupt "
            f"activations into the clean run), got {patch_into!r}{hint.get(patch_into, '')}."
        )


def reads_last_position_only(task, metric: Metric | None) -> bool:
    """True when the metric is the task's own (`Task.metric` reads the last position's logits only), so
    patched runs need logits at the last position alone: the unembedding, often the largest matmul of a
    forward (50k tokens on GPT-2), then runs on one position instead of all."""
    return metric is None and isinstance(task, Task) and type(task).metric is Task.metric and type(task).logit_diff is Task.logit_diff


def run_baseline(model, task, metric: Metric, hook_names: Iterable[str]) -> Baseline:
    """Run the clean and corrupt prompts (in one forward), caching `hook_names`; checks that `metric` gives a scalar."""
    names = set(hook_names)
    batch = task.clean_tokens.shape[0]
    tokens = torch.cat([task.clean_tokens, task.corrupt_tokens]).to(device_of(model))
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    return baseline_from(metric, logits[:batch], logits[batch:], {n: cache[n] for n in names}, batch)


def baseline_from(metric: Metric, clean: torch.Tensor, corrupt: torch.Tensor, stacked: dict[str, torch.Tensor], batch: int) -> Baseline:
    """A Baseline from the clean and corrupt logits [batch, seq, vocab] and activations whose first
    2 * batch rows are the clean then the corrupt prompts'."""
    return Baseline(
        clean_metric=float(check_metric(metric(clean), where="metric on the clean prompts")),
        corrupt_metric=float(check_metric(metric(corrupt), where="metric on the corrupt prompts")),
        clean={n: act[:batch].clone() for n, act in stacked.items()},
        corrupt={n: act[batch : 2 * batch].clone() for n, act in stacked.items()},
        clean_last_logits=clean[0, -1].float().cpu(),
        corrupt_last_logits=corrupt[0, -1].float().cpu(),
    )


def normalize(values: torch.Tensor, baseline: Baseline) -> torch.Tensor:
    """(values - corrupt) / (clean - corrupt): 0 = the corrupt run's metric, 1 = the clean run's."""
    return rescale(
        values, baseline.corrupt_metric, baseline.clean_metric,
        undefined=f"The clean and corrupt metrics are equal ({baseline.clean_metric:.4g}), so the normalized metric is "
        "undefined; pass normalize=False for raw values, or use prompts the model tells apart.",
    )
