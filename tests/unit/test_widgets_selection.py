"""The shared Selection and linking widgets."""

from __future__ import annotations

import pytest
import torch
from traitlets import TraitError

from interpwidgets.widgets import AttentionPatterns, Selection, link


def patterns(**kwargs) -> AttentionPatterns:
    pattern = torch.tril(torch.ones(2, 3, 3))
    return AttentionPatterns(pattern=pattern / pattern.sum(-1, keepdim=True), tokens=list("abc"), **kwargs)


def test_each_widget_has_its_own_selection_until_linked():
    a, b = patterns(), patterns(head=1)
    assert a.selection is not b.selection
    shared = link(a, b)
    assert a.selection is shared and b.selection is shared
    shared.head = 1
    assert b.selection.head == 1


def test_link_can_use_a_given_selection_and_needs_widgets():
    selection = Selection(token=2)
    a = patterns()
    assert link(a, selection=selection) is selection and a.selection.token == 2
    with pytest.raises(ValueError):
        link()


def test_selection_values_are_checked():
    selection = Selection()
    with pytest.raises(TraitError):
        selection.layer = -1
    with pytest.raises(TraitError):
        selection.head = "2"
    selection.feature = None


def test_selection_is_sent_as_a_widget_reference():
    selection = Selection()
    widget = patterns(selection=selection)
    assert widget.get_state()["selection"] == f"anywidget:{selection.model_id}"
    with pytest.raises(TraitError):
        widget.selection = "anywidget:somewhere-else"


def test_a_widget_seeds_an_empty_selection_with_its_head():
    selection = Selection()
    patterns(selection=selection, head=1)
    assert (selection.layer, selection.head) == (0, 1)
    patterns(selection=selection, head=0)
    assert selection.head == 1  # an existing choice is kept
