"""Temporary hooks on a model, always removed, also when the forward raises; hook names are checked first.

`hooked` (on TransformerLens hook points) and `block_inputs_hooked` (on a transformer block's inputs) are how
interventions, patching and the circuit passes attach the `(hook_name, fn)` pairs they build. They are not the
only way hooks reach a model: `run_with_cache` records activations with TransformerLens' own hooks, and SAE
splicing and evaluation (`sae/splicing.py`, `sae/evaluation.py`) call TransformerLens' `model.hooks` /
`run_with_hooks` directly; those remove their hooks on exit too. `count_hooks` tells whether any are left.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

HookFn = Callable[[torch.Tensor, Any], Any]
"""A TransformerLens forward hook: `fn(activation, hook) -> new activation or None`."""


def check_hook_name(model, name: str) -> None:
    """Raise a ValueError naming the closest hook points if `name` is not a hook point of `model`."""
    names = model.hook_dict
    if name in names:
        return
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"{name!r} is not a hook point of this model.{hint} "
        "List them with `model.hook_dict.keys()` (e.g. 'blocks.0.hook_resid_pre', 'blocks.0.attn.hook_z')."
    )


@contextmanager
def hooked(model, fwd_hooks: Sequence[tuple[str, HookFn]] = (), bwd_hooks: Sequence[tuple[str, HookFn]] = ()) -> Iterator[Any]:
    """Attach the hooks for the duration of the `with` block; they are removed on exit, also on errors.

    Names are checked before anything is attached, so a typo changes nothing on the model.
    Contexts nest: an inner one removes only its own hooks.
    """
    for name, _ in (*fwd_hooks, *bwd_hooks):
        check_hook_name(model, name)
    with model.hooks(fwd_hooks=list(fwd_hooks), bwd_hooks=list(bwd_hooks)):
        yield model


BlockPreHook = Callable[[tuple, dict], tuple[tuple, dict]]
"""fn(args, kwargs) -> (args, kwargs): rewrites the inputs of a transformer block before it runs."""


@contextmanager
def block_inputs_hooked(model, pre_hooks: Sequence[tuple[int, BlockPreHook]]) -> Iterator[Any]:
    """Rewrite the inputs of `model.blocks[layer]` (hidden states and the per-batch arguments a Hugging Face
    block receives: attention mask, position ids, rotary tables) for the `with` block; always removed."""
    handles = []
    try:
        for layer, fn in pre_hooks:
            handles.append(model.blocks[layer].register_forward_pre_hook(lambda module, a, k, fn=fn: fn(a, k), with_kwargs=True))
        yield model
    finally:
        for handle in handles:
            handle.remove()


def run_hooked(model, tokens: torch.Tensor, fwd_hooks: Sequence[tuple[str, HookFn]], **kwargs) -> torch.Tensor:
    """One forward of `tokens` [batch, seq] with `fwd_hooks` attached; returns logits [batch, seq, vocab]."""
    with hooked(model, fwd_hooks):
        return model(tokens, **kwargs)


def count_hooks(model) -> int:
    """How many hook functions are attached to the model's hook points (0 on an untouched model)."""
    points = {id(p): p for p in model.hook_dict.values()}.values()
    return sum(len(p.fwd_hooks) + len(p.bwd_hooks) for p in points)
