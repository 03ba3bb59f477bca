"""interpwidgets: Jupyter widgets and an engine for mechanistic interpretability of language models.

    import interpwidgets as iw
    model = iw.load_model()                       # bundled teaching model (TransformerBridge)
    task = iw.tasks.ioi(model, n=64)              # clean/corrupt prompts + metric
    with iw.config.scoped(progress=False): ...    # defaults: progress bars, device, batch memory budget

The subpackages load on first use (`iw.patching`, `iw.widgets`, ...): `import interpwidgets` costs no more than
importing torch, which `load_model` needs anyway; each subpackage imports its public names explicitly.
"""

from __future__ import annotations

import importlib

from interpwidgets import config
from interpwidgets.models import load_model

__version__ = "0.1.0"

SUBPACKAGES = ("data", "models", "tasks", "interventions", "patching", "lens", "sae", "circuits", "widgets")


def __getattr__(name: str):
    if name in SUBPACKAGES:
        return importlib.import_module(f"interpwidgets.{name}")
    raise AttributeError(f"module 'interpwidgets' has no attribute {name!r}")


__all__ = ["config", "load_model", *SUBPACKAGES]
