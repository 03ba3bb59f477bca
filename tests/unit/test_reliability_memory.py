"""Memory budgets: every stacked sweep and gradient pass that takes `batch_budget_mb` sizes its forwards by the one
documented formula, groups = budget // (row_bytes * prompts) (patching.stacking), so the estimated memory of each
forward stays within the budget; the real peak, measured on the GPT-2-shaped test model, stays within it too; and a
budget too small for even one forward says what it needs and how to change it.

How the peak is measured: torch's CPU allocator is invisible to tracemalloc and torch.profiler's CPU memory events
came back empty here, so the test reads the process's peak resident memory (Linux VmHWM, reset through
/proc/self/clear_refs) before and after the call. That counts everything the call touches (tensors, Python objects,
allocator slack) above what was resident before, the model's weights excluded; it is skipped where unavailable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits import passes
from interpwidgets.models.families import save_random_family
from interpwidgets.patching import activation, attribution, path, stacking
from interpwidgets.patching.runs import reads_last_position_only

MiB = 2**20


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return iw.load_model(str(save_random_family("gpt2", tmp_path_factory.mktemp("gpt2"))), device="cpu")


@pytest.fixture(scope="module")
def task(gpt2):
    return iw.tasks.ioi(gpt2, n=8, seed=0)


@pytest.fixture
def forwards(monkeypatch):
    """The number of groups (stacked runs of the whole batch) each forward of the patching engine carries."""
    seen: list[int] = []
    real = stacking.stacked_forward

    def recording(model, tokens, groups, *args, **kwargs):
        seen.append(len(groups))
        return real(model, tokens, groups, *args, **kwargs)

    for module in (activation, attribution, path):
        monkeypatch.setattr(module, "stacked_forward", recording)
    return seen


def group_mb(model, task, grad: bool, last_position_only: bool = True) -> float:
    """The documented estimate for one group: row_bytes (by hand below) times the prompts. The task's metric reads
    the last position's logits only, so the patching sweeps keep only those (`last_position_only`)."""
    cfg, (batch, seq) = model.cfg, task.clean_tokens.shape
    per_layer = seq * (12 * cfg.d_model + 3 * cfg.d_mlp + 3 * cfg.n_heads * seq)
    logits = 2 * (1 if last_position_only else seq) * cfg.d_vocab
    row = 4 * ((per_layer * cfg.n_layers if grad else per_layer) + logits)
    return row * batch / MiB


SWEEPS = {
    "activation": (False, lambda m, t, b: iw.patching.activation_patch(m, t, site="resid_pre", batch_budget_mb=b, progress=False)),
    "path": (False, lambda m, t, b: iw.patching.path_patch(m, t, senders="heads", receivers="logits", batch_budget_mb=b,
                                                           progress=False)),
    "attribution_atp": (True, lambda m, t, b: iw.patching.attribution_patch(m, t, site="z", batch_budget_mb=b, progress=False)),
    "attribution_ig": (True, lambda m, t, b: iw.patching.attribution_patch(m, t, site="resid_pre", method="ig", steps=8,
                                                                           batch_budget_mb=b, progress=False)),
}


@pytest.mark.parametrize("name", list(SWEEPS))
def test_each_forward_fits_the_budget_by_the_documented_formula(gpt2, task, forwards, name):
    assert reads_last_position_only(task, None)  # no metric given: the task's own
    grad, run = SWEEPS[name]
    one = group_mb(gpt2, task, grad)
    budget = 6.5 * one  # room for 6 groups
    run(gpt2, task, budget)
    assert forwards and max(forwards) * one <= budget
    assert max(forwards) == 6 or len(forwards) == 1  # the budget was used, not just respected


def test_integrated_gradients_of_circuits_batch_alphas_within_the_budget(gpt2, task, monkeypatch):
    one = group_mb(gpt2, task, grad=True, last_position_only=False)  # circuits keep every position's logits
    seen: list[int] = []
    real = passes.forward
    monkeypatch.setattr(passes, "forward", lambda model, tokens, *a, **k: (seen.append(len(tokens)), real(model, tokens, *a, **k))[1])
    site = passes.embed_site()
    x = torch.zeros(*task.clean_tokens.shape, gpt2.cfg.d_model)
    passes.interpolated_gradient(gpt2, site, task.clean_tokens, x, x + 1, task.metric, 10, batch_budget_mb=3.5 * one)
    assert [n // len(task.clean_tokens) for n in seen] == [3, 3, 3, 1]


def _peak_rss_mb(fn) -> float:
    status = Path("/proc/self/status")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
    except OSError:
        pytest.skip("peak resident memory cannot be reset on this system")

    def read(field: str) -> float:
        line = next(line for line in status.read_text().splitlines() if line.startswith(field))
        return int(line.split()[1]) / 1024

    before = read("VmRSS:")
    fn()
    return read("VmHWM:") - before


@pytest.mark.parametrize("name", ["activation", "attribution_ig"])
def test_measured_peak_memory_stays_within_the_budget(gpt2, task, name):
    grad, run = SWEEPS[name]
    budget = 24.0
    run(gpt2, task, budget)  # warm up: first-call allocations are not the sweep's
    peak = _peak_rss_mb(lambda: run(gpt2, task, budget))
    assert peak <= budget, f"{name}: peak {peak:.1f} MiB above what was resident, budget {budget} MiB"


def test_a_budget_below_one_forward_says_what_it_needs_and_how_to_change_it(gpt2, task):
    batch, seq = task.clean_tokens.shape
    needed = 3 * group_mb(gpt2, task, grad=False)  # activation patching: clean + corrupt + one patched run
    with pytest.warns(UserWarning, match=rf"needs: about {needed:.3g} MiB .* fewer or shorter prompts, or raise batch_budget_mb"):
        assert stacking.groups_per_chunk(gpt2, batch, seq, needed / 2, last_position_only=True, minimum=3) == 3
    one = group_mb(gpt2, task, grad=True)  # attribution patching (atp): one forward and backward
    with pytest.warns(UserWarning, match=rf"batch_budget_mb=0.01 MiB is below .* about {one:.3g} MiB"):
        iw.patching.attribution_patch(gpt2, task, site="z", batch_budget_mb=0.01, progress=False)
