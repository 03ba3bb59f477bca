"""interpwidgets: Jupyter widgets and an engine for mechanistic interpretability of language models.

    import interpwidgets as iw
    model = iw.load_model()                       # bundled teaching model (TransformerBridge)
    task = iw.tasks.ioi(model, n=64)              # clean/corrupt prompts + metric
"""

from __future__ import annotations

import importlib

from interpwidgets.models import load_model

__version__ = "0.1.0"

_SUBMODULES = ("tasks", "interventions", "patching", "lens", "sae", "circuits", "widgets", "data", "models")


def __getattr__(name: str):
    # submodules load lazily so `import interpwidgets` stays cheap
    if name in _SUBMODULES:
        return importlib.import_module(f"interpwidgets.{name}")
    raise AttributeError(f"module 'interpwidgets' has no attribute {name!r}")


__all__ = ["load_model", *_SUBMODULES]
