"""The public surface: every exported name resolves to the object it documents, whatever was imported first."""

from __future__ import annotations

import importlib
import types

import pytest

import interpwidgets as iw

PACKAGES = ("interpwidgets.sae", "interpwidgets.circuits", "interpwidgets.widgets")


@pytest.mark.parametrize("package", PACKAGES)
def test_exported_names_are_never_shadowed_by_submodules(package):
    """Import every submodule first (as other code does), then check no exported name became a module."""
    pkg = importlib.import_module(package)
    for module in set(getattr(pkg, "_EXPORTS", getattr(pkg, "_WIDGETS", {})).values()):
        importlib.import_module(f"{package}.{module}")
    shadowed = [name for name in pkg.__all__ if isinstance(getattr(pkg, name), types.ModuleType)]
    assert not shadowed, f"{package}: {shadowed} resolve to modules, not the exported objects"


def test_top_level_surface():
    assert callable(iw.load_model)
    for name in ("tasks", "interventions", "patching", "sae", "circuits", "widgets"):
        assert isinstance(getattr(iw, name), types.ModuleType)
    with pytest.raises(AttributeError):
        iw.no_such_thing  # noqa: B018
