"""`load`: one entry point for every dictionary source we read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from interpwidgets.sae.base import SAE
from interpwidgets.sae.formats import CFG_FILE, WEIGHTS_FILE, SAEFormatError, load_saelens
from interpwidgets.sae.labels import attach_labels
from interpwidgets.sae.sets import SAESet

FORMATS = (
    f"an SAELens folder ({CFG_FILE} + {WEIGHTS_FILE}); a dictionary_learning checkpoint (ae.pt + config.json); "
    "a Gemma Scope params.npz (or its folder); a sparsify hookpoint folder (cfg.json + sae.safetensors) or a folder "
    "of them; a circuit-tracer config.yaml (or its folder) or one of its per-layer .safetensors files"
)


def _loader(path: Path) -> Callable[..., SAE | SAESet] | None:
    """The reader for the file or folder at `path`, or None when it is in no format we know."""
    from interpwidgets.sae import circuit_tracer, dictionary_learning, gemma_scope, sparsify

    if path.is_dir():
        if sparsify.is_sparsify_folder(path) and not (path / WEIGHTS_FILE).is_file():
            return sparsify.load_sparsify
        if (path / CFG_FILE).is_file() or (path / WEIGHTS_FILE).is_file():  # weights alone: an incomplete save
            return load_saelens
        if (path / "ae.pt").is_file():
            return dictionary_learning.load_dictionary_learning
        if (path / gemma_scope.PARAMS_FILE).is_file():
            return gemma_scope.load_gemma_scope
        if (path / circuit_tracer.CONFIG_FILE).is_file():
            return circuit_tracer.load_circuit_tracer_set
        if any(p.is_dir() and sparsify.is_sparsify_folder(p) for p in path.iterdir()):
            return sparsify.load_sparsify_set
        return None
    if path.name == "ae.pt":
        return dictionary_learning.load_dictionary_learning
    if path.suffix == ".npz":
        return gemma_scope.load_gemma_scope
    if path.suffix in (".yaml", ".yml"):
        return circuit_tracer.load_circuit_tracer_set
    if path.suffix == ".safetensors" and path.name not in (WEIGHTS_FILE, sparsify.WEIGHTS_FILE):
        return circuit_tracer.load_circuit_tracer_transcoder
    return None


def load(source, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None, **overrides) -> SAE | SAESet:
    """A dictionary, or an `SAESet` of them for a file that holds several, from `source`:

    - an SAELens-format folder (cfg.json + sae_weights.safetensors),
    - a dictionary_learning checkpoint (a folder with ae.pt + config.json, or the ae.pt file),
    - a Gemma Scope params.npz or its folder (hooks inferred from the repository layout; see `gemma_scope`),
    - a sparsify hookpoint folder (cfg.json + sae.safetensors), or a run folder of them -> SAESet (see `sparsify`),
    - a circuit-tracer config.yaml or its folder -> SAESet of transcoders, or one of its per-layer
      .safetensors files (see `circuit_tracer`),
    - an `SAE` of ours (returned as is), or a sae_lens SAE object (converted, by duck typing).

    A single dictionary's `sae.labels` are bound to the labels file beside it (`labels.json` in its folder, or
    `<name>.labels.json` beside a one-file dictionary), read when it exists: see `interpwidgets.sae.labels`.
    `overrides` replace config fields (e.g. `hook_name=...` when the file does not say it). Weights load as
    float32 on the CPU; `device=` and `dtype=` move them, e.g. `load(path, device=model.cfg.device)` to splice
    into a model there (a float32 dictionary runs on a bfloat16 model: splicing casts at the hooks).
    """
    result = _load(source, **overrides)
    if isinstance(source, (str, os.PathLike)):
        for sae in result.values() if isinstance(result, SAESet) else [result]:
            sae.source = str(Path(source).resolve())  # shown by the SAE's card; not saved with it
        if isinstance(result, SAE):  # several dictionaries from one source share no single labels file
            attach_labels(result, source)
    if device is not None or dtype is not None:
        result.to(device=device, dtype=dtype)
    return result


def _load(source, **overrides) -> SAE | SAESet:
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
    loader = _loader(path)
    if loader is None:
        raise SAEFormatError(f"{path} is neither a dictionary nor a set of dictionaries in a format interpwidgets reads: {FORMATS}.")
    return loader(path, **overrides)
