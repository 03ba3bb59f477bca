"""The public surface: every exported name resolves to the object it documents, whatever was imported first."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import interpwidgets as iw

PACKAGES = ("interpwidgets." + name for name in iw.SUBPACKAGES)


@pytest.mark.parametrize("package", list(PACKAGES))
def test_exported_names_are_never_shadowed_by_submodules(package):
    """Import every submodule first (as other code does), then check that each name in `__all__` is the object it
    exports, never a submodule of the same name."""
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, f"{package}."):
        importlib.import_module(info.name)
    shadowed = [name for name in pkg.__all__ if isinstance(getattr(pkg, name), types.ModuleType) and name not in SUBMODULE_EXPORTS]
    assert not shadowed, f"{package}: {shadowed} resolve to modules, not the exported objects"


SUBMODULE_EXPORTS = {"vocab", "corpus", "tokenizer", "mixture"}  # interpwidgets.data exports its modules


def test_top_level_surface():
    assert callable(iw.load_model)
    for name in ("tasks", "interventions", "patching", "sae", "circuits", "widgets"):
        assert isinstance(getattr(iw, name), types.ModuleType)
    with pytest.raises(AttributeError):
        iw.no_such_thing  # noqa: B018
