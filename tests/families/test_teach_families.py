"""iw.teach's hand-written patching hooks (01_patching's check) on every family: rotary, RMSNorm, grouped-query
and Gemma models patch the same hook names the same way as iw.patching.activation_patch."""

from __future__ import annotations

import torch

import interpwidgets as iw
from interpwidgets.teach.patching import restored_by_position


def engine_row(model, task, layer):
    return iw.patching.activation_patch(model, task, site="resid_pre", by="position", progress=False).values[layer]


def test_the_checks_hooks_match_the_engine_on_every_family(family_model):
    """Rotary, RMSNorm, grouped-query and Gemma models too: the hook names and the patch are the same everywhere."""
    model = family_model
    task = iw.tasks.induction(model, n=4, length=6, seed=0)
    torch.testing.assert_close(restored_by_position(model, task, 1), engine_row(model, task, 1).float(), atol=1e-3, rtol=1e-3)
