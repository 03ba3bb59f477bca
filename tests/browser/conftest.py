"""Browser tests: a real JupyterLab server and a real Chromium driven by Playwright (see harness.py).

One server and one browser per test session (starting them takes a while). `notebook_page(name, cells)`
writes a notebook into the server's root, opens it in JupyterLab (or in the Notebook 7 interface with
`ui="notebook"`), starts running all cells and returns a `NotebookPage`. `widget_page(name, cells, selector)`
does that once per name and also waits for what a test file needs first: the JSON a cell printed (the
kernel's own values) and the first widget matching `selector`, idle. `screenshot(target, name)` saves
artifacts/screenshots/<name>.png.

    @pytest.fixture(scope="module")
    def shown(widget_page):
        return widget_page("steering", CELLS, ".iw-steering", ready=lambda root: root.locator(".iw-description").wait_for())
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import (
    RUN_TIMEOUT_MS,
    SHUT_DOWN_KERNEL,
    JupyterServer,
    NotebookPage,
    lab_url,
    launch_chromium,
    open_and_run,
    printed,
    running_server,
    wait_idle,
    write_notebook,
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    with running_server(tmp_path_factory.mktemp("jupyter")) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def notebook_page(jupyter_server: JupyterServer, browser) -> Iterator[Callable[..., NotebookPage]]:
    """notebook_page(name, cells, ui="lab" | "notebook") -> NotebookPage with the notebook open, all cells started.

    Module-scoped: at the end of the module each notebook's kernel is shut down and its page closed, so that open
    JupyterLab pages and idle kernels do not slow down the rest of the suite on a 2-core machine."""
    contexts = []

    def open_notebook(name: str, cells: list[str], ui: str = "lab") -> NotebookPage:
        path = jupyter_server.root / f"{name}.ipynb"
        write_notebook(path, cells)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(RUN_TIMEOUT_MS)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        url = lab_url(jupyter_server, path, name) if ui == "lab" else f"{jupyter_server.url}/notebooks/{path.name}"
        open_and_run(page, url, path.name)
        return NotebookPage(page, dialogs)

    yield open_notebook
    for context in contexts:
        for page in context.pages:
            try:
                page.evaluate(SHUT_DOWN_KERNEL)
            except Exception:  # noqa: BLE001 - a page that already closed or crashed has nothing to shut down
                pass
        context.close()


@dataclass
class WidgetPage:
    """An open notebook, the JSON one of its cells printed (empty without a marker) and its first widget's root."""

    notebook: NotebookPage
    expected: dict
    root: object


@pytest.fixture(scope="module")
def widget_page(notebook_page) -> Callable[..., WidgetPage]:
    """widget_page(name, cells, selector, *, marker="IW-EXPECTED", ready=None) -> WidgetPage, opened once per name.

    Waits for the JSON printed after `marker` (None: no such cell), then for the first element matching `selector`,
    `ready(root)` (e.g. its first drawing) and an idle status line.
    """
    opened: dict[str, WidgetPage] = {}

    def open_widget(name: str, cells: list[str], selector: str, *, marker: str | None = "IW-EXPECTED",
                    ready: Callable[[object], None] | None = None) -> WidgetPage:
        if name not in opened:
            notebook = notebook_page(name, cells)
            expected = printed(notebook.page, marker) if marker else {}
            root = notebook.page.locator(selector).first
            if ready is not None:
                ready(root)
            wait_idle(root)
            opened[name] = WidgetPage(notebook, expected, root)
        return opened[name]

    return open_widget


@pytest.fixture(scope="session")
def screenshot() -> Callable:
    """screenshot(page_or_locator, name): saves artifacts/screenshots/<name>.png and returns its path."""

    def save(page_or_locator, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page_or_locator.screenshot(path=str(path))
        return path

    return save
