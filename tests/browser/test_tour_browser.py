"""A tour of the tutorials as a new user takes it: each notebook opened in JupyterLab (and the quick ones in Notebook 7;
`IW_FULL_TOUR=1` takes every one through both, which doubles the longest run of the suite), run top to bottom in
Chromium. No cell fails, and the page raises no error that the same interface does not raise on a notebook
without interpwidgets (Notebook 7 raises one of its own while loading its settings, "Cannot read properties of
undefined (reading 'schema')", on a notebook holding only `1 + 1`; it is not ours, and it is the only one allowed)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from harness import KERNEL_NAME, NOTEBOOK_OPEN, RUN_ALL, SHUT_DOWN_KERNEL, lab_url

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
QUICK = ("00_quickstart", "04_quick_checks")  # also toured in Notebook 7 by default
TOURS = [(path, ui) for path in NOTEBOOKS for ui in ("lab", "notebook")
         if ui == "lab" or path.stem in QUICK or os.environ.get("IW_FULL_TOUR") == "1"]
TOUR_TIMEOUT_MS = 900_000

# true once every code cell has run (or one has failed: "run all" stops there), and the kernel is idle
FINISHED = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel || kernel.status !== "idle") return false;
  const cells = panel.content.widgets.filter((cell) => cell.model.type === "code");
  const failed = cells.some((cell) => cell.model.outputs.toJSON().some((o) => o.output_type === "error"));
  return failed || cells.every((cell) => cell.model.executionCount !== null);
}"""
FAILURES = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter((cell) => cell.model.type === "code")
  .flatMap((cell, i) => cell.model.outputs.toJSON().filter((o) => o.output_type === "error").map((o) => `cell ${i}: ${o.ename}: ${o.evalue}`))"""


def _open(browser, server, source: Path | None, name: str, ui: str) -> tuple[object, list[str]]:
    """Copies `source` (None: a notebook holding only `1 + 1`) into the server's root as `name`, opens it in `ui`,
    runs it all and waits until it finishes; returns the page and the page errors it raised."""
    notebook = nbformat.read(source, as_version=4) if source else nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("1 + 1")])
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "interpwidgets tests", "language": "python"}
    path = server.root / name
    nbformat.write(notebook, path)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(TOUR_TIMEOUT_MS)
    page.goto(lab_url(server, path, name.removesuffix(".ipynb")) if ui == "lab" else f"{server.url}/notebooks/{name}")
    page.wait_for_function(NOTEBOOK_OPEN, arg=name)
    page.evaluate(RUN_ALL)
    page.wait_for_function(FINISHED, polling=1000)
    page.wait_for_timeout(2000)  # widgets finish their first drawing
    return page, errors


@pytest.fixture(scope="module")
def baseline_errors(browser, jupyter_server) -> dict[str, set[str]]:
    """The page errors each interface raises on a notebook without interpwidgets."""
    found = {}
    for ui in ("lab", "notebook"):
        page, errors = _open(browser, jupyter_server, None, f"baseline-{ui}.ipynb", ui)
        page.evaluate(SHUT_DOWN_KERNEL)
        page.context.close()
        found[ui] = set(errors)
    return found


@pytest.mark.parametrize(("path", "ui"), TOURS, ids=[f"{path.stem}-{ui}" for path, ui in TOURS])
def test_the_tutorial_runs_in_the_browser_without_an_error_of_ours(browser, jupyter_server, baseline_errors, path, ui):
    """Every cell runs, every widget draws, and no page error appears beyond the interface's own."""
    page, errors = _open(browser, jupyter_server, path, f"tour-{ui}-{path.name}", ui)
    try:
        assert page.evaluate(FAILURES) == []
        assert page.locator(".iw-root").count() > 0, "no widget was drawn"
        ours = sorted(set(errors) - baseline_errors[ui])
        assert not ours, f"page errors in {path.name} ({ui}): {ours}"
        assert page.locator(".iw-root .iw-error:visible").count() == 0, "a widget shows an error"
    finally:
        page.evaluate(SHUT_DOWN_KERNEL)  # free its kernel
        page.context.close()
