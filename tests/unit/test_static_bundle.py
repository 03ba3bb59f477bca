"""The committed front-end bundles in interpwidgets/static/ are exactly what js/ builds, and js/ type-checks.

Needs the pinned build tools: run `npm ci --prefix js` first.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
JS = REPO / "js"
STATIC = REPO / "interpwidgets" / "static"


def node_tool(name: str) -> Path:
    tool = JS / "node_modules" / ".bin" / name
    if shutil.which("node") is None or not tool.exists():
        pytest.fail(f"{name} is missing: run `npm ci --prefix js` (Node.js 18+) before the tests.")
    return tool


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["nice", "-n", "19", *command], cwd=JS, capture_output=True, text=True, timeout=300, check=False)


def test_committed_bundles_match_a_fresh_build(tmp_path):
    node_tool("esbuild")
    built = run(["node", "build.mjs", "--outdir", str(tmp_path)])
    assert built.returncode == 0, built.stderr
    fresh = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    committed = {path.name: path.read_bytes() for path in STATIC.iterdir() if path.suffix in (".js", ".css")}
    assert fresh, "the build produced nothing"
    assert sorted(committed) == sorted(fresh), "interpwidgets/static/ has stale or missing bundles: run `npm run build --prefix js`"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert not stale, f"out-of-date bundles {stale}: run `npm run build --prefix js` and commit interpwidgets/static/"


def test_typescript_sources_type_check():
    node_tool("tsc")
    checked = run(["node_modules/.bin/tsc", "--noEmit", "-p", "tsconfig.json"])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_bundles_load_nothing_from_the_network():
    """No URLs (XML namespace names aside), no dynamic imports: everything a widget runs is in its bundle."""
    for bundle in [*STATIC.glob("*.js"), *STATIC.glob("*.css")]:
        text = bundle.read_text()
        urls = re.findall(r"https?://[^\s\"'`)]+|[\"'`(]//[\w.-]+\.[a-z]{2,}", text)
        urls = [url for url in urls if not url.startswith("http://www.w3.org/")]
        assert not urls, f"{bundle.name} refers to {urls[:3]}"
        assert "import(" not in text and "@import" not in text, bundle.name
