"""Many patch runs in one forward: run k copies of a [batch, seq] batch stacked along the batch axis,
each copy ("group") with its own edits, in chunks that fit a memory budget.

Group g occupies rows g*batch ... (g+1)*batch - 1 of the stacked batch; at each hook point, every
group's edits see and return only that group's rows. The per-forward Python overhead of a
TransformerBridge is large next to a small model's compute, so fewer, bigger forwards win.

Late entry: a group whose first edit is in block L computes blocks 0..L-1 exactly as an unedited
group with the same tokens does, so it joins the forward at block L as a copy of that group's rows
instead. The join rewrites every input of the block with one row per prompt: the hidden states and
the per-batch arguments a Hugging Face block receives (attention mask; position ids and rotary
tables where they are per row), so the grown batch is consistent all the way down.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from weakref import WeakKeyDictionary

import torch
from tqdm.auto import tqdm

from interpwidgets.config import progress_enabled, resolve_budget_mb
from interpwidgets.interventions import Component, hooked
from interpwidgets.interventions.components import RowFn
from interpwidgets.interventions.hooks import BlockPreHook, block_inputs_hooked
from interpwidgets.models.device import device_of

Group = Sequence[tuple[str, RowFn]]
"""The edits of one patch run: (hook name, fn(rows [batch, ...]) -> rows)."""

UNEMBED_INPUT = "unembed.hook_in"


def copy_from(component: Component, source: torch.Tensor) -> RowFn:
    """An edit setting `component` to its value in `source` (a [batch, ...] activation), in place."""

    def copy(act: torch.Tensor) -> torch.Tensor:
        return component.write(act, source)

    return copy


def row_bytes(model, seq: int, grad: bool = False, last_position_only: bool = False) -> int:
    """A rough upper estimate of the memory one prompt row of a forward needs (with backward: all layers' saved activations)."""
    cfg = model.cfg
    per_layer = seq * (12 * cfg.d_model + 3 * (cfg.d_mlp or 0) + 3 * cfg.n_heads * seq)
    logits = 2 * (1 if last_position_only else seq) * cfg.d_vocab
    live = per_layer * cfg.n_layers if grad else per_layer
    return 4 * (live + logits)


def groups_per_chunk(model, batch: int, seq: int, budget_mb: float | None, grad: bool = False, last_position_only: bool = False,
                     minimum: int = 1) -> int:
    """How many groups of `batch` rows fit in `budget_mb`: `budget_mb * 2**20 // (row_bytes * batch)`, at least
    `minimum` (the groups one forward of the caller cannot do without, e.g. the clean and corrupt runs beside one
    patched run). When even those do not fit, a warning says what the forward needs and how to change it."""
    budget_mb = resolve_budget_mb(budget_mb, device_of(model))
    group_bytes = row_bytes(model, seq, grad, last_position_only) * batch
    fit = int(budget_mb * 2**20 // group_bytes)
    if fit < minimum:
        needed = minimum * group_bytes / 2**20
        warnings.warn(
            f"batch_budget_mb={budget_mb:g} MiB is below what one forward here needs: about {needed:.3g} MiB for "
            f"{minimum} run(s) of {batch} prompt(s) x {seq} tokens. Running at that size anyway; to stay within the "
            f"budget use fewer or shorter prompts, or raise batch_budget_mb to at least {needed:.3g} "
            "(iw.config.set(batch_budget_mb=...)).",
            UserWarning, stacklevel=3,
        )
    return max(minimum, fit)


def chunks(n_groups: int, per_chunk: int, desc: str, progress: bool | None = None) -> Iterator[range]:
    """Consecutive ranges of group indices, with a progress bar that shows up after a second and advances as
    each range is done (so iterate lazily; `progress` defaults to `iw.config.progress`)."""
    bar = tqdm(total=n_groups, desc=desc, unit="run", delay=1.0, disable=not progress_enabled(progress), leave=False)
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
    late_from: int | None = None,
    last_position_only: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward of all groups stacked along the batch, each group with its own edits.

    tokens: [batch, seq] shared by every group, or [groups, batch, seq] one batch per group.
    capture: hook names whose (edited) activations to return, [present groups * batch, ...] (see `grouped`).
    live: filled at each edited hook with its group's rows before the edits run (that group must have no edits).
    late_from: an unedited group with the same tokens as the edited ones, listed before them; edited
      groups (sorted by their first edited block) then join late as copies of its rows (see module doc).
    last_position_only: unembed the last position only (logits [groups, batch, 1, vocab]), for metrics that read no other.
    Returns logits [groups, batch, seq, vocab] and the captured activations.
    """
    k = len(groups)
    stacked = tokens.to(device_of(model))
    stacked = stacked.repeat(k, 1) if stacked.ndim == 2 else stacked.reshape(-1, stacked.shape[-1])
    batch = stacked.shape[0] // k
    by_hook: dict[str, list[tuple[int, RowFn]]] = defaultdict(list)
    for g, group in enumerate(groups):
        for name, fn in group:
            by_hook[name].append((g, fn))
    entry = _entry_blocks(model, groups, late_from)
    n_blocks = model.cfg.n_layers
    present = [sum(e <= layer for e in entry) for layer in range(n_blocks)] + [k]  # groups in the batch at each block
    joins = [(layer, _join(present[layer - 1], present[layer], batch, late_from))
             for layer in range(1, n_blocks) if present[layer] > present[layer - 1]]
    captured: dict[str, torch.Tensor] = {}

    def make_hook(name: str) -> Callable:
        edits = by_hook.get(name, [])
        layer = Component(name).layer
        groups_here = present[layer if layer is not None else n_blocks] if name.startswith("blocks.") else (
            present[0] if name.startswith(("hook_embed", "hook_pos_embed", "embed.", "pos_embed.")) else k)

        def hook(act: torch.Tensor, hook) -> torch.Tensor:
            out = act
            if edits:
                out = out.clone(memory_format=torch.contiguous_format)
                view = out.view(groups_here, batch, *act.shape[1:])
                if live is not None:
                    live.rows[name] = view[live.group]
                for g, fn in edits:
                    view[g] = fn(view[g])
            if name in capture:
                captured[name] = out
            return out

        return hook

    names = list(dict.fromkeys([*by_hook, *capture]))
    hooks = [(name, make_hook(name)) for name in names]
    if last_position_only and UNEMBED_INPUT in model.hook_dict:
        hooks.append((UNEMBED_INPUT, lambda act, hook: act[:, -1:]))
    with hooked(model, hooks), block_inputs_hooked(model, joins):
        logits = model(stacked[: present[0] * batch])
    return logits.view(k, batch, *logits.shape[1:]), captured


def _join(groups_before: int, groups_after: int, batch: int, source: int) -> BlockPreHook:
    """A block-input rewrite appending `groups_after - groups_before` copies of group `source`'s rows to
    every input with one row per prompt (dim 0 of size groups_before * batch); other inputs pass as they are."""
    rows_before = groups_before * batch

    def grow(value):
        if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == rows_before:
            rows = value.view(groups_before, batch, *value.shape[1:])[source]
            return torch.cat([value, rows.repeat(groups_after - groups_before, *[1] * (value.ndim - 1))])
        if isinstance(value, (tuple, list)):
            return type(value)(grow(v) for v in value)
        return value

    def rewrite(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return grow(args), {key: grow(value) for key, value in kwargs.items()}

    return rewrite


def _entry_blocks(model, groups: Sequence[Group], late_from: int | None) -> list[int]:
    """The block at which each group joins the forward (all 0 unless late entry applies)."""
    if late_from is None or not supports_late_entry(model):
        return [0] * len(groups)
    entry = []
    for g, group in enumerate(groups):
        layers = [Component(name).layer for name, _ in group]
        entry.append(0 if g <= late_from or not layers or None in layers else min(layers))
    return entry if entry == sorted(entry) else [0] * len(groups)


_LATE_ENTRY: WeakKeyDictionary = WeakKeyDictionary()


def supports_late_entry(model) -> bool:
    """Whether rows can join a forward at a block boundary: checked once per model by letting a copy of a
    2-prompt batch join at block 1 and comparing with a plain forward of both copies (falls back to full runs)."""
    if model not in _LATE_ENTRY:
        ok = False
        if model.cfg.n_layers > 1:
            tokens = torch.tensor([[0, 1, 2], [0, 2, 1]], device=device_of(model)) % model.cfg.d_vocab
            try:
                with torch.no_grad():
                    plain = model(tokens.repeat(2, 1))
                    with block_inputs_hooked(model, [(1, _join(1, 2, 2, 0))]):
                        grown = model(tokens)
                ok = grown.shape == plain.shape and torch.allclose(grown, plain, atol=1e-5, rtol=1e-4)
            except (RuntimeError, ValueError, IndexError):
                ok = False
        _LATE_ENTRY[model] = ok
    return _LATE_ENTRY[model]


def grouped(tensor: torch.Tensor, k: int) -> torch.Tensor:
    """[k * batch, ...] -> [k, batch, ...]."""
    return tensor.view(k, tensor.shape[0] // k, *tensor.shape[1:])
