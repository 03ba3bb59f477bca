"""`load`: one entry point for every dictionary source we read."""

from __future__ import annotations

import os
from pathlib import Path

from interpwidgets.sae.base import SAE
from interpwidgets.sae.formats import CFG_FILE, SAEFormatError, load_saelens


def load(source, **overrides) -> SAE:
    """A dictionary from `source`:

    - an SAELens-format folder (cfg.json + sae_weights.safetensors),
    - a dictionary_learning checkpoint (a folder with ae.pt + config.json, or the ae.pt file),
    - an `SAE` of ours (returned as is), or a sae_lens SAE object (converted, by duck typing).

    `overrides` replace config fields (e.g. `hook_name=...` when the file does not say it).
    """
    if isinstance(source, SAE):
        return source
    if not isinstance(source, (str, os.PathLike)):
        from interpwidgets.sae.adapters import from_saelens_object, looks_like_saelens_sae

        if looks_like_saelens_sae(source):
            return from_saelens_object(source, **overrides)
        raise TypeError(f"Cannot load an SAE from a {type(source).__name__}; pass a path or an SAE object.")
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    if path.is_dir() and (path / CFG_FILE).is_file():
        return load_saelens(path, **overrides)
    if (path.is_dir() and (path / "ae.pt").is_file()) or path.name == "ae.pt":
        from interpwidgets.sae.dictionary_learning import load_dictionary_learning

        return load_dictionary_learning(path, **overrides)
    raise SAEFormatError(
        f"{path} is neither an SAELens folder ({CFG_FILE} + sae_weights.safetensors) nor a dictionary_learning "
        "checkpoint (ae.pt + config.json)."
    )
