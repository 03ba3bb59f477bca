"""`Intervention`: a set of activation edits usable as a context manager or as a one-shot run."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack

import torch

from interpwidgets.interventions.components import RowFn
from interpwidgets.interventions.hooks import hooked


class Intervention:
    """Edits to a model's activations, attached only while in use.

        with ablate(model, "L1H2"):          # context manager: hooks live inside the block
            logits = model(tokens)
        logits = steer(model, "resid_pre2", d, alpha=4).run(tokens)   # one shot
        with ablate(model, "L1H2") + steer(model, "resid_pre2", d, alpha=4):   # composed
            ...

    Hooks are removed on exit, also when the forward raises; nested contexts each remove their own.
    """

    def __init__(self, model, edits: Sequence[tuple[str, RowFn]], label: str = "intervention"):
        self.model = model
        self.edits = list(edits)
        self.label = label
        self._stacks: list[ExitStack] = []

    @property
    def fwd_hooks(self) -> list[tuple[str, object]]:
        """The edits as TransformerLens forward hooks `(hook_name, fn(act, hook))`."""
        return [(name, _as_hook(edit)) for name, edit in self.edits]

    def __enter__(self) -> "Intervention":
        stack = ExitStack()
        stack.enter_context(hooked(self.model, self.fwd_hooks))
        self._stacks.append(stack)
        return self

    def __exit__(self, *exc) -> None:
        self._stacks.pop().close()

    def run(self, tokens: torch.Tensor, **kwargs) -> torch.Tensor:
        """Logits [batch, seq, vocab] of one forward of `tokens` [batch, seq] under this intervention."""
        with self:
            return self.model(tokens, **kwargs)

    def run_with_cache(self, tokens: torch.Tensor, **kwargs):
        """(logits, ActivationCache) of one forward under this intervention; kwargs go to `run_with_cache`."""
        with self:
            return self.model.run_with_cache(tokens, **kwargs)

    def __add__(self, other: "Intervention") -> "Intervention":
        return combine(self, other)

    def __repr__(self) -> str:
        return f"Intervention({self.label}, {len(self.edits)} hook(s))"


def combine(*interventions: Intervention) -> Intervention:
    """One intervention applying all of `interventions` (their edits run in the order given)."""
    if not interventions:
        raise ValueError("combine() needs at least one intervention.")
    model = interventions[0].model
    if any(i.model is not model for i in interventions):
        raise ValueError("Only interventions on the same model can be combined.")
    edits = [edit for i in interventions for edit in i.edits]
    return Intervention(model, edits, " + ".join(i.label for i in interventions))


def _as_hook(edit: RowFn):
    def hook(act: torch.Tensor, hook) -> torch.Tensor:
        return edit(act)

    return hook
