"""Writing files so that a crash never leaves a torn one: `write_atomic`.

The new contents go to a temporary file in the same folder, are flushed to disk (fsync), and the temporary file
is renamed over the old one (`os.replace`, atomic on POSIX and Windows); the folder is fsynced so the rename
survives a power cut too. A reader, also after `kill -9` at any moment, finds the old complete file or the new
complete one. A writer killed before its rename leaves a hidden `.<name>.*.tmp` file, which readers ignore and the
next write of the same file removes. Folders of several files (an SAE) build on this: see `sae/formats.py`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STALE_AFTER_S = 600.0  # a temporary file this old is a leftover of a killed writer, not one still writing


def write_atomic(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Replace `path` by what `write(temporary_path)` writes there, atomically; returns `path`."""
    path = Path(path)
    _remove_stale(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """`write_atomic` of a UTF-8 text file."""
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_json(source: str | os.PathLike, what: str, fix: str = "") -> Any:
    """The JSON value in `source`: JSON text (starting with "{" or "[") or the path of a JSON file. A missing file or
    invalid JSON (a truncated or corrupt file) is a ValueError naming `what` and, when given, `fix`."""
    text, where = str(source), "the JSON text"
    if not text.lstrip().startswith(("{", "[")):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"No {what} file at {str(path)!r} (pass a path or JSON text).")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} is not valid {what} JSON ({err}): it is truncated or corrupt.{' ' + fix if fix else ''}") from None


def _fsync(path: str | os.PathLike) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a folder cannot be opened on some systems (Windows): its rename is durable enough there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale(path: Path) -> None:
    """Remove temporary files of `path` left by writers killed long enough ago."""
    now = time.time()
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > STALE_AFTER_S:
                tmp.unlink()
        except OSError:
            pass
