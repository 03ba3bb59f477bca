"""Browser tests: a real JupyterLab server and a real Chromium driven by Playwright.

One server per test session (starting one takes a while), on 127.0.0.1 at a free port, with its own
config, data, runtime and home folders, no token, no network use (no news, no update checks, read-only
extension manager). Its kernel is this interpreter (a kernelspec written into the private data folder).
The server and every process it started are always stopped at the end of the session.

`notebook_page(name, cells)` writes a notebook into the server's root, opens it in JupyterLab (or in the
Notebook 7 UI with `ui="notebook"`), runs all cells and returns the Playwright page. Screenshots go to
artifacts/screenshots/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
KERNEL_NAME = "interpwidgets-test"
START_TIMEOUT_S = 180
RUN_TIMEOUT_MS = 120_000
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# Config for every Jupyter app the server loads (JupyterLab, Notebook 7): nothing reaches the network.
SERVER_CONFIG = {
    "ServerApp": {
        "ip": "127.0.0.1", "token": "", "password": "", "open_browser": False, "port_retries": 0,
        "allow_root": True, "disable_check_xsrf": False,
    },
    "LabApp": {
        "news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "extension_manager": "readonly", "expose_app_in_browser": True,
    },
    "JupyterNotebookApp": {"expose_app_in_browser": True},
    "LanguageServerManager": {"autodetect": False},
}
# JupyterLab settings: no announcement pop-up asking to fetch news.
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false", "doNotDisturbMode": True},
}


@dataclass
class JupyterServer:
    url: str
    root: Path
    process: subprocess.Popen


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _private_environment(base: Path) -> dict[str, str]:
    env = dict(os.environ)
    dirs = {name: base / name for name in ("home", "config", "data", "runtime", "ipython")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(dirs["home"]), JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), IPYTHONDIR=str(dirs["ipython"]), JUPYTER_PLATFORM_DIRS="1",
        MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
    )
    (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG))
    settings = base / "lab-settings"
    settings.mkdir(exist_ok=True)
    (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES))
    env["JUPYTERLAB_SETTINGS_DIR"] = str(dirs["config"] / "lab" / "user-settings")
    kernel = dirs["data"] / "kernels" / KERNEL_NAME
    kernel.mkdir(parents=True, exist_ok=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "interpwidgets tests", "language": "python",
    }))
    return env


def _wait_until_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=5) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop(server: JupyterServer) -> None:
    """Shuts the kernels and the server down; kills whatever of them is left."""
    try:
        parent = psutil.Process(server.process.pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    request = urllib.request.Request(f"{server.url}/api/shutdown", method="POST")
    try:
        urllib.request.urlopen(request, timeout=10).close()
        server.process.wait(timeout=20)
    except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
        pass
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=10)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    base = tmp_path_factory.mktemp("jupyter")
    root = base / "root"
    root.mkdir()
    env = _private_environment(base)
    port = _free_port()
    log = base / "server.log"
    command = [
        sys.executable, "-m", "jupyterlab", f"--port={port}", f"--ServerApp.root_dir={root}",
        f"--LabApp.app_settings_dir={base / 'lab-settings'}",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = JupyterServer(f"http://127.0.0.1:{port}", root, process)
    try:
        _wait_until_ready(server.url, process, log)
        yield server
    finally:
        _stop(server)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def write_notebook(path: Path, cells: list[str]) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "interpwidgets tests", "language": "python"}
    nbformat.write(notebook, path)


# Starts "run all" once the notebook's kernel is ready (the tests then wait for what they look for).
RUN_ALL = """async () => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  await panel.context.sessionContext.ready;
  void app.commands.execute("notebook:run-all-cells");
}"""
NOTEBOOK_OPEN = """(path) => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return Boolean(panel && panel.context && panel.context.path === path && panel.context.sessionContext.session);
}"""


@dataclass
class NotebookPage:
    """An open notebook whose cells have been started; `dialogs` collects any alert() the page opened."""

    page: object
    dialogs: list[str]


def _open_and_run(page, url: str, path: str) -> None:
    page.goto(url)
    page.wait_for_function(NOTEBOOK_OPEN, arg=path)
    page.evaluate(RUN_ALL)


@pytest.fixture(scope="session")
def notebook_page(jupyter_server: JupyterServer, browser) -> Iterator[Callable]:
    """notebook_page(name, cells, ui="lab" | "notebook") -> NotebookPage with the notebook open, all cells started."""
    contexts = []

    def open_notebook(name: str, cells: list[str], ui: str = "lab"):
        path = jupyter_server.root / f"{name}.ipynb"
        write_notebook(path, cells)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(RUN_TIMEOUT_MS)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        # each notebook in its own fresh JupyterLab workspace, so no other notebook is restored beside it
        prefix = f"lab/workspaces/{name}/tree" if ui == "lab" else "notebooks"
        _open_and_run(page, f"{jupyter_server.url}/{prefix}/{path.name}?reset", path.name)
        return NotebookPage(page, dialogs)

    yield open_notebook
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshot() -> Callable:
    """screenshot(page_or_locator, name): saves artifacts/screenshots/<name>.png and returns its path."""

    def save(page_or_locator, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page_or_locator.screenshot(path=str(path))
        return path

    return save
