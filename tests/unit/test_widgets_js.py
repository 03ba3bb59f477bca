"""The front end's own unit tests (js/tests, run in Node): request queueing/coalescing, and decoding of arrays
encoded here by encoding.py, every codec (float16, uint8, int32): the wire format checked across the two languages.
Needs `npm ci --prefix js`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from interpwidgets.widgets.encoding import float16_array, int32_array, uint8_array

JS = Path(__file__).resolve().parents[2] / "js"


def fixtures() -> list[dict]:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(3, 7)).astype(np.float32)
    with_nan = values.copy()
    with_nan[1, 2] = np.nan
    attention = rng.random(300).astype(np.float32)
    integers = np.array([[0, -1, 2**31 - 1], [-(2**31), 24575, 7]], dtype=np.int64)
    cases = [
        ("float16", float16_array(with_nan), with_nan, 2e-3 * 3),
        ("float16 scaled", float16_array(values * 1e6), values * 1e6, 1e6 * 3 * 1e-3),
        ("uint8", uint8_array(attention), attention, 1 / 255),
        ("uint8 deflate", uint8_array(attention, compress=True), attention, 1 / 255),
        ("uint8 signed", uint8_array(values), values, float(values.max() - values.min()) / 255),
        ("int32", int32_array(integers), integers, 0),
    ]
    out = []
    for name, wire, expected, tolerance in cases:
        encoded = {**wire, "data": base64.b64encode(wire["data"]).decode("ascii")}
        flat = [None if np.isnan(v) else float(v) for v in expected.reshape(-1)]
        out.append({"name": name, "wire": encoded, "expected": flat, "tolerance": tolerance})
    return out


def test_front_end_unit_tests_pass(tmp_path):
    if shutil.which("node") is None or not (JS / "node_modules" / "esbuild").exists():
        pytest.fail("the front-end tests need Node.js and `npm ci --prefix js`.")
    fixture = tmp_path / "wire.json"
    fixture.write_text(json.dumps(fixtures()))
    run = subprocess.run(
        ["nice", "-n", "19", "node", "test.mjs"], cwd=JS, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "IW_WIRE_FIXTURE": str(fixture)},
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "# fail 0" in report and "# skipped 0" in report and "# pass 0" not in report, report
