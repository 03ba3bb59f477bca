"""Every tutorial notebook is committed with its outputs stripped. Running them top to bottom (on CPU) is
tests/browser/test_tour_browser.py's job: it runs each in JupyterLab and in Notebook 7, fails on any failing cell and
also checks the page (`-m notebooks` selects both files)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_tutorial_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no tutorial notebooks"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them before committing"
