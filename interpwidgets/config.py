"""`iw.config`: the defaults every engine function falls back to when an option is left as None.

This module is the config: its settings read as attributes, `set` and `scoped` change them.

    iw.config.progress                      # True: progress bars on long operations
    iw.config.set(progress=False)           # for the rest of the session
    with iw.config.scoped(batch_budget_mb=256, device="cpu"):
        ...                                 # only inside the block (and its threads' copies of the context)

Settings:
- progress: show tqdm progress bars on operations that take more than a second or so (default True).
- device: where `load_model` and SAE training put new tensors (default None: CUDA when available, else CPU).
- batch_budget_mb: memory for each stacked or batched forward (default None: 1 GiB on CPU, half the free
  memory on a GPU); lower it to lower the peak, raise it to batch more.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

CPU_BUDGET_MB = 1024.0


@dataclass(frozen=True)
class Settings:
    progress: bool = True
    device: str | None = None
    batch_budget_mb: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be True or False, got {self.progress!r}.")
        if self.device is not None and not isinstance(self.device, str):
            raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0', or None; got {self.device!r}.")
        budget = self.batch_budget_mb
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0):
            raise ValueError(f"batch_budget_mb must be a positive number of MiB or None, got {budget!r}.")


_current: contextvars.ContextVar[Settings] = contextvars.ContextVar("interpwidgets_settings", default=Settings())  # noqa: B039 - frozen
_FIELDS = tuple(f.name for f in dataclasses.fields(Settings))


def __getattr__(name: str):
    # the settings read as module attributes: iw.config.progress, iw.config.device, iw.config.batch_budget_mb
    if name in _FIELDS:
        return getattr(_current.get(), name)
    raise AttributeError(f"module 'interpwidgets.config' has no attribute {name!r}; the settings are {list(_FIELDS)}.")


def current() -> Settings:
    """The settings in force here (a frozen copy)."""
    return _current.get()


def set(**changes) -> None:  # noqa: A001 - iw.config.set reads best
    """Change settings for the rest of the session (unknown names raise a TypeError listing the valid ones)."""
    _current.set(_changed(changes))


@contextlib.contextmanager
def scoped(**changes) -> Iterator[None]:
    """Change settings inside a with-block only; they are restored on exit, also on error."""
    token = _current.set(_changed(changes))
    try:
        yield
    finally:
        _current.reset(token)


def _changed(changes: dict) -> Settings:
    unknown = sorted(name for name in changes if name not in _FIELDS)
    if unknown:
        raise TypeError(f"Unknown setting(s) {unknown}; the settings are {list(_FIELDS)}.")
    return dataclasses.replace(_current.get(), **changes)


def progress_enabled(progress: bool | None) -> bool:
    """`progress` if given, else the configured default."""
    return _current.get().progress if progress is None else bool(progress)


def resolve_budget_mb(budget_mb: float | None, device) -> float:
    """`budget_mb` if given, else the configured budget, else 1 GiB on CPU and half the free memory on a GPU."""
    budget = _current.get().batch_budget_mb if budget_mb is None else budget_mb
    if budget is None:
        import torch

        device = torch.device(device)
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return free / 2**20 / 2
        return CPU_BUDGET_MB
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ValueError(f"batch_budget_mb must be positive, got {budget!r}.")
    return float(budget)


def default_device(device: str | None = None) -> str:
    """`device` if given, else the configured device, else "cuda" when available, else "cpu"."""
    chosen = device or _current.get().device
    if chosen:
        return chosen
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
