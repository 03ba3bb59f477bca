"""Many patch runs in one forward: run k copies of a [batch, seq] batch stacked along the batch axis,
each copy ("group") with its own edits, in chunks that fit a memory budget.

Group g occupies rows g*batch ... (g+1)*batch - 1 of the stacked batch; at each hook point, every
group's edits see and return only that group's rows. The per-forward Python overhead of a
TransformerBridge is large next to a small model's compute, so fewer, bigger forwards win.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from interpwidgets.interventions import Component, hooked
from interpwidgets.interventions.components import RowFn

Group = Sequence[tuple[str, RowFn]]
"""The edits of one patch run: (hook name, fn(rows [batch, ...]) -> rows)."""

CPU_BUDGET_MB = 1024.0


def copy_from(component: Component, source: torch.Tensor) -> RowFn:
    """An edit setting `component` to its value in `source` (a [batch, ...] activation), in place."""

    def copy(act: torch.Tensor) -> torch.Tensor:
        return component.write(act, source)

    return copy


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def default_budget_mb(device: torch.device) -> float:
    """1 GiB on CPU; half the free memory on a GPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 2**20 / 2
    return CPU_BUDGET_MB


def row_bytes(model, seq: int, grad: bool = False) -> int:
    """A rough upper estimate of the memory one prompt row of a forward needs (with backward: all layers' saved activations)."""
    cfg = model.cfg
    per_layer = seq * (12 * cfg.d_model + 3 * (cfg.d_mlp or 0) + 3 * cfg.n_heads * seq)
    logits = 2 * seq * cfg.d_vocab
    live = per_layer * cfg.n_layers if grad else per_layer
    return 4 * (live + logits)


def groups_per_chunk(model, batch: int, seq: int, budget_mb: float | None, grad: bool = False) -> int:
    """How many groups of `batch` rows fit in `budget_mb` (at least one)."""
    if budget_mb is None:
        budget_mb = default_budget_mb(model_device(model))
    if budget_mb <= 0:
        raise ValueError(f"batch_budget_mb must be positive, got {budget_mb}.")
    return max(1, int(budget_mb * 2**20 // (row_bytes(model, seq, grad) * batch)))


def chunks(n_groups: int, per_chunk: int, desc: str, progress: bool = True) -> Iterator[range]:
    """Consecutive ranges of group indices, with a progress bar that shows up after a second."""
    bar = tqdm(total=n_groups, desc=desc, unit="run", delay=1.0, disable=not progress, leave=False)
    try:
        for start in range(0, n_groups, per_chunk):
            stop = min(start + per_chunk, n_groups)
            yield range(start, stop)
            bar.update(stop - start)
    finally:
        bar.close()


class LiveRows:
    """One group's rows at the hook being run, for edits that copy from that group in the same forward
    (e.g. the clean prompts' activations into the corrupt ones)."""

    def __init__(self, group: int):
        self.group = group
        self.rows: dict[str, torch.Tensor] = {}

    def copier(self, component: Component) -> RowFn:
        """An edit setting `component` to its value in the live group's rows, in place."""

        def copy(act: torch.Tensor) -> torch.Tensor:
            return component.write(act, self.rows[component.hook_name])

        return copy


def stacked_forward(
    model,
    tokens: torch.Tensor,
    groups: Sequence[Group],
    capture: Sequence[str] = (),
    live: LiveRows | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward of all groups stacked along the batch, each group with its own edits.

    tokens: [batch, seq] shared by every group, or [groups, batch, seq] one batch per group.
    capture: hook names whose (edited) activations to return, [groups * batch, ...] (see `grouped`).
    live: filled at each edited hook with its group's rows before the edits run (that group must have no edits).
    Returns logits [groups, batch, seq, vocab] and the captured activations.
    """
    k = len(groups)
    stacked = tokens.to(model_device(model))
    stacked = stacked.repeat(k, 1) if stacked.ndim == 2 else stacked.reshape(-1, stacked.shape[-1])
    batch = stacked.shape[0] // k
    by_hook: dict[str, list[tuple[int, RowFn]]] = defaultdict(list)
    for g, group in enumerate(groups):
        for name, fn in group:
            by_hook[name].append((g, fn))
    captured: dict[str, torch.Tensor] = {}

    def make_hook(name: str) -> Callable:
        edits = by_hook.get(name, [])

        def hook(act: torch.Tensor, hook) -> torch.Tensor:
            out = act
            if edits:
                out = act.clone(memory_format=torch.contiguous_format)
                view = out.view(k, batch, *act.shape[1:])
                if live is not None:
                    live.rows[name] = view[live.group]
                for g, fn in edits:
                    view[g] = fn(view[g])
            if name in capture:
                captured[name] = out
            return out

        return hook

    names = list(dict.fromkeys([*by_hook, *capture]))
    with hooked(model, [(name, make_hook(name)) for name in names]):
        logits = model(stacked)
    return logits.view(k, batch, *logits.shape[1:]), captured


def grouped(tensor: torch.Tensor, k: int) -> torch.Tensor:
    """[k * batch, ...] -> [k, batch, ...]."""
    return tensor.view(k, tensor.shape[0] // k, *tensor.shape[1:])
