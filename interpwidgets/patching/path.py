"""Path patching (Wang et al. 2022; Goldowsky-Dill et al. 2023).

A sender's patched output reaches the receivers only along direct paths: every other head and
MLP is frozen to its value on the base run.

1. Run the base prompts (`patch_into`, clean by default) with the senders set to their values on the
   source prompts (the other run) and every other head (hook_z) and MLP (hook_mlp_out) frozen to the base run;
   record the receivers' inputs (a head's q / k / v, an MLP's output, a residual stream point).
2. Run the base prompts again with only the receivers' recorded values patched in; read the metric.
For receivers="logits" the metric of step 1 is the answer (the direct path into the unembedding,
with the final LayerNorm recomputed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from interpwidgets.interventions import Component, parse_component
from interpwidgets.interventions.components import kv_group
from interpwidgets.models.device import device_of
from interpwidgets.patching.result import PatchResult
from interpwidgets.patching.runs import PatchInto, run_baseline
from interpwidgets.patching.stacking import chunks, copy_from, grouped, groups_per_chunk, stacked_forward
from interpwidgets.patching.sweep import Layout, prepare
from interpwidgets.tasks.metric import Metric, check_metric

_RECEIVER_HEAD = re.compile(r"^l(\d+)h(\d+)(?:\.([qkv]+))?$")


def path_patch(
    model,
    task,
    *,
    senders="heads",
    receivers="logits",
    patch_into: PatchInto = "clean",
    metric: Metric | None = None,
    normalize: bool = True,
    batch_budget_mb: float | None = None,
    progress: bool | None = None,
) -> PatchResult:
    """Patch senders along their direct paths into receivers, everything else frozen.

    senders: "heads" (sweep every head: values [n_layers, n_heads], the IOI paper's Figure 3
      kind), "mlps" (every MLP: [n_layers]), or a list whose entries are each one sender or a
      set of senders patched together: heads ("L1H2" or (1, 2)) and MLPs ("mlp1") -> [n_entries].
    receivers: "logits"; or one receiver or a list of receivers patched together: a head's
      query / key / value input ("L2H1.q", "L2H1.kv", "L2H1" = q, k and v, or (2, 1, "q"); on grouped-query
      models a query head's k / v input is its key/value head, shared with the rest of its group), an MLP
      ("mlp2": its output computed from its patched input), or a residual stream point
      ("resid_pre2", "resid_mid2", "resid_post2").
    patch_into: "clean" (noising, the papers': run the clean prompts, senders take corrupt values) or "corrupt".
    metric, normalize, batch_budget_mb, progress: as for `activation_patch`.
    Sweep cells whose sender is not upstream of any receiver are NaN.
    """
    cfg = model.cfg
    if "blocks.0.attn.hook_z" not in model.hook_dict:
        raise ValueError("Path patching freezes every attention head's output, but this model has no "
                         "'blocks.0.attn.hook_z' (no attention heads); use activation_patch on the residual stream.")
    has_mlp = "blocks.0.hook_mlp_out" in model.hook_dict
    layout = _senders(model, senders, has_mlp)
    sweep = prepare(model, task, layout=layout, patch_into=patch_into, metric=metric, normalize=normalize)
    sender_sets = layout.cells
    receiver_set = _receivers(model, receivers)
    reads = [_read_point(r, cfg.n_layers) for r in receiver_set] if receiver_set else [2 * cfg.n_layers]
    reachable = [any(_write_point(s) < read for s in group for read in reads) for group in sender_sets]
    if not isinstance(senders, str) and not all(reachable):
        bad = [" + ".join(s.label for s in g) for g, ok in zip(sender_sets, reachable) if not ok]
        raise ValueError(f"Senders {bad} are not upstream of the receivers, so no path joins them; pick earlier senders.")

    frozen = [f"blocks.{layer}.attn.hook_z" for layer in range(cfg.n_layers)]
    frozen += [f"blocks.{layer}.hook_mlp_out" for layer in range(cfg.n_layers)] if has_mlp else []
    baseline = run_baseline(model, task, sweep.metric, frozen)
    base, source = baseline.base_and_source(patch_into)
    tokens = getattr(task, f"{patch_into}_tokens").to(device_of(model))
    receiver_hooks = {r.hook_name for r in receiver_set}
    unfrozen = {name for name in receiver_hooks if name.endswith("hook_mlp_out")}

    todo = [i for i, ok in enumerate(reachable) if ok]
    values = torch.full((len(sender_sets),), float("nan"))
    # each chunk leads with an unpatched run, so patched runs join the forward at their first edited block
    last_only = sweep.last_position_only
    per_chunk = max(1, groups_per_chunk(model, *tokens.shape, batch_budget_mb, last_position_only=last_only, minimum=2) - 1)
    with torch.no_grad():
        for part in chunks(len(todo), per_chunk, "path patching", progress):
            senders_here = [sender_sets[todo[i]] for i in part]
            step1 = [[]] + [_freeze_edits(group, frozen, base, source, unfrozen) for group in senders_here]
            logits, recorded = stacked_forward(model, tokens, step1, capture=sorted(receiver_hooks), late_from=0,
                                              last_position_only=last_only)
            if receiver_set:
                rows = {name: grouped(t, t.shape[0] // tokens.shape[0]) for name, t in recorded.items()}
                step2 = [[]] + [
                    [edit for r in receiver_set for edit in r.edits(model, copy_from(r, rows[r.hook_name][g]))]
                    for g in range(1, len(step1))
                ]
                logits, _ = stacked_forward(model, tokens, step2, late_from=0, last_position_only=last_only)
            for g, i in enumerate(part, start=1):
                senders_label = ", ".join(c.label for c in sender_sets[todo[i]])
                values[todo[i]] = float(check_metric(sweep.metric(logits[g]), where=f"metric with {senders_label} path-patched"))
    return sweep.result(values, baseline, method="path", receivers=[r.label for r in receiver_set] or ["logits"])


def _senders(model, senders, has_mlp: bool) -> Layout:
    """The cells of "heads", "mlps" or an explicit list of senders / sender sets."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if senders == "heads":
        sets = [(Component(f"blocks.{L}.attn.hook_z", head=h),) for L in range(n_layers) for h in range(n_heads)]
        return Layout("z", ("layer", "head"), (n_layers, n_heads), sets)
    if senders == "mlps":
        if not has_mlp:
            raise ValueError("This model has no MLPs (attention-only), so senders='mlps' is empty; use senders='heads'.")
        return Layout("mlp_out", ("layer",), (n_layers,), [(Component(f"blocks.{L}.hook_mlp_out"),) for L in range(n_layers)])
    if isinstance(senders, str) or _is_single(senders):
        senders = [senders]
    sets = []
    for entry in senders:
        group = [parse_component(s, model) for s in ([entry] if _is_single(entry) else entry)]
        for s in group:
            if not _is_head_output(s) and not s.hook_name.endswith(".hook_mlp_out") or s.positions is not None:
                raise ValueError(f"Sender {s.label} is neither a head (e.g. 'L1H2') nor an MLP (e.g. 'mlp1').")
        if not group:
            raise ValueError("A sender set is empty; give at least one head or MLP in each entry.")
        sets.append(tuple(group))
    if not sets:
        raise ValueError("No senders given; use 'heads', 'mlps' or a list such as ['L1H2', 'mlp0'].")
    return Layout("senders", ("sender",), (len(sets),), sets, labels={"sender": [" + ".join(s.label for s in g) for g in sets]})


def _receivers(model, receivers) -> list[Component]:
    """The receivers' components (empty for "logits")."""
    if isinstance(receivers, str) or _is_single(receivers):
        receivers = [receivers]
    if any(isinstance(r, str) and r == "logits" for r in receivers):
        if len(receivers) > 1:
            raise ValueError("receivers='logits' already covers every path to the output; do not combine it with others.")
        return []
    found: list[Component] = []
    for spec in receivers:
        found += _receiver(model, spec)
    if not found:
        raise ValueError("No receivers given; use 'logits', 'L2H1.q', 'mlp2', 'resid_pre2' or a list of them.")
    return found


def _receiver(model, spec) -> list[Component]:
    if isinstance(spec, tuple) and len(spec) in (2, 3) and isinstance(spec[0], int) and isinstance(spec[1], int):
        spec = f"L{spec[0]}H{spec[1]}" + (f".{spec[2]}" if len(spec) == 3 else "")
    if isinstance(spec, str):
        match = _RECEIVER_HEAD.match(spec.strip().lower())
        if match:
            layer, head, letters = int(match[1]), int(match[2]), match[3] or "qkv"
            parse_component(f"L{layer}H{head}", model)  # checks the layer and the query head
            group = kv_group(model)
            return [parse_component(f"L{layer}H{head // group if x in 'kv' else head}.{x}", model) for x in dict.fromkeys(letters)]
    component = parse_component(spec, model)
    name = component.hook_name
    if component.positions is not None or component.neuron is not None or component.direction is not None:
        raise ValueError(f"Receiver {component.label} must be a whole head input, MLP or residual point (no positions/neurons).")
    if re.search(r"\.attn\.hook_[qkv]$", name) and component.head is not None:
        return [component]
    if re.search(r"\.hook_(mlp_out|resid_pre|resid_mid|resid_post)$", name):
        return [component]
    raise ValueError(
        f"Receiver {component.label} is not supported; use 'logits', a head's input ('L2H1.q', 'L2H1.k', 'L2H1.v'), "
        "an MLP ('mlp2') or a residual point ('resid_pre2', 'resid_mid2', 'resid_post2')."
    )


def _is_single(spec) -> bool:
    """A str, a Component, or a (layer, head[, letters]) tuple, as opposed to a collection of those."""
    if isinstance(spec, (str, Component)):
        return True
    return isinstance(spec, tuple) and len(spec) in (2, 3) and all(isinstance(x, int) for x in spec[:2])


def _is_head_output(component: Component) -> bool:
    return component.hook_name.endswith(".attn.hook_z") and component.head is not None


def _write_point(sender: Component) -> float:
    """Where a sender writes into the residual stream: head L at 2L + 0.5, MLP L at 2L + 1.5."""
    return 2 * sender.layer + (0.5 if _is_head_output(sender) else 1.5)


def _read_point(receiver: Component, n_layers: int) -> int:
    """Where a receiver reads the residual stream: resid_pre / q,k,v of layer L at 2L, resid_mid / MLP L at 2L + 1, resid_post at 2L + 2."""
    name = receiver.hook_name
    offset = 2 if name.endswith("resid_post") else 1 if name.endswith(("resid_mid", "mlp_out")) else 0
    return 2 * receiver.layer + offset


def _freeze_edits(senders: Sequence[Component], frozen: Sequence[str], base: dict, source: dict, unfrozen: set[str]):
    """Edits that freeze every head and MLP from the first sender's block on at the base run's values
    (earlier ones hold them anyway), except the senders (source values) and receiver MLPs."""
    first = min(s.layer for s in senders)
    edits = []
    for name in frozen:
        if name in unfrozen or Component(name).layer < first:
            continue
        overrides = [s for s in senders if s.hook_name == name]
        edits.append((name, _frozen(base[name], [(s, source[name]) for s in overrides])))
    return edits


def _frozen(values: torch.Tensor, overrides):
    def freeze(act: torch.Tensor) -> torch.Tensor:
        act[...] = values
        for component, source in overrides:
            component.write(act, source)
        return act

    return freeze
