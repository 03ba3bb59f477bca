"""Driving a real JupyterLab server and a real Chromium (Playwright) from Python: used by the browser tests'
fixtures (conftest.py) and by bench/bench_widgets.py.

`running_server(base)` starts JupyterLab on 127.0.0.1 at a free port with its own config, data, runtime
and home folders under `base`, no token and no network use (no news, no update checks, read-only
extension manager), its kernel being this interpreter; it always stops the server and every process the
server started. `launch_chromium(playwright)` starts Debian's chromium headless. `open_and_run(page, url,
path)` opens a notebook and starts "run all".
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil

KERNEL_NAME = "interpwidgets-test"
START_TIMEOUT_S = 180
RUN_TIMEOUT_MS = 240_000
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


SHUT_DOWN_KERNEL = "() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown().catch(() => undefined)"
"""Shuts down the kernel of the notebook open in the page (JupyterLab or Notebook 7)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def private_environment(base: Path) -> dict[str, str]:
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


def wait_until_ready(url: str, process: subprocess.Popen, log: Path) -> None:
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


def stop(server: JupyterServer) -> None:
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




@contextmanager
def running_server(base: Path) -> Iterator[JupyterServer]:
    """A JupyterLab server whose root is `base/root`, stopped (with its kernels) on exit."""
    root = base / "root"
    root.mkdir(parents=True, exist_ok=True)
    env = private_environment(base)
    port = free_port()
    log = base / "server.log"
    command = [
        sys.executable, "-m", "jupyterlab", f"--port={port}", f"--ServerApp.root_dir={root}",
        f"--LabApp.app_settings_dir={base / 'lab-settings'}",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = JupyterServer(f"http://127.0.0.1:{port}", root, process)
    try:
        wait_until_ready(server.url, process, log)
        yield server
    finally:
        stop(server)


def launch_chromium(playwright):
    """Debian's chromium, headless, with no background network use."""
    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


def lab_url(server: JupyterServer, path: Path, workspace: str) -> str:
    """The JupyterLab URL opening `path` alone in a fresh workspace (no other notebook restored beside it)."""
    return f"{server.url}/lab/workspaces/{workspace}/tree/{path.name}?reset"


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
# Runs `code` in the open notebook's kernel and resolves what it printed (and any error as "Name: message").
EXECUTE = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.context.sessionContext.session.kernel;
  const future = kernel.requestExecute({ code });
  let out = "";
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === "stream") out += msg.content.text;
    if (msg.header.msg_type === "error") out += `${msg.content.ename}: ${msg.content.evalue}`;
  };
  await future.done;
  return out;
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


def open_and_run(page, url: str, path: str) -> None:
    page.goto(url)
    page.wait_for_function(NOTEBOOK_OPEN, arg=path)
    page.evaluate(RUN_ALL)


@contextmanager
def jupyter_theme(page, dark: bool = True) -> Iterator[None]:
    """The block runs in JupyterLab's dark (or light) theme, switched and waited for; the light theme is back
    after it, also when the block fails, so the next test starts as every test does."""
    try:
        set_theme(page, dark)
        yield
    finally:
        set_theme(page, dark=False)


def set_theme(page, dark: bool) -> None:
    page.evaluate("(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})",
                  "JupyterLab Dark" if dark else "JupyterLab Light")
    page.wait_for_function("(dark) => document.body.dataset.jpThemeLight === String(!dark)", arg=dark)


# ---- reading what the page shows -------------------------------------------------------------------
def printed(page, marker: str, timeout_ms: float | None = None) -> dict:
    """The JSON a notebook cell printed after `marker` (e.g. "IW-EXPECTED"), once its output appears."""
    output = page.locator(".jp-OutputArea-output", has_text=marker)
    output.wait_for(timeout=timeout_ms)
    return json.loads(output.inner_text().split(marker, 1)[1])


def wait_idle(root) -> None:
    """Wait until a widget's root says no request of its is in flight."""
    root.locator("xpath=self::*[@data-iw-status='idle']").wait_for()


def number(text: str) -> float:
    """A number as a widget prints it (typographic minus, optional %)."""
    return float(text.strip().rstrip("%").replace("\u2212", "-"))


def texts(locator) -> list[str]:
    """The textContent of every element the locator matches."""
    return locator.evaluate_all("els => els.map(e => e.textContent)")
