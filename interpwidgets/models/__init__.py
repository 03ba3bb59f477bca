"""Model loading: the bundled teaching model, or any TransformerLens model from the local cache."""

from __future__ import annotations

import torch

from interpwidgets import config
from interpwidgets.models.pretrained import load_pretrained
from interpwidgets.models.teaching import build_teaching_model, load_teaching_model

TEACHING_NAMES = (None, "teaching", "interpwidgets-teaching")


def default_device() -> torch.device:
    """`iw.config.device` if set, else CUDA when available, else the CPU."""
    return torch.device(config.default_device())


def load_model(name: str | None = None, device: str | torch.device | None = None, dtype: torch.dtype | str = torch.float32):
    """A TransformerLens `TransformerBridge` in eval mode, on `device` (default: `iw.config.device`, else the GPU
    when there is one).

    `name=None` gives the bundled teaching model (offline, no download); otherwise a TransformerLens
    model name or alias ("gpt2", "pythia-70m", ...) loaded from the local Hugging Face cache, or the
    path of a folder written by `save_pretrained`. `dtype`: torch.float32 (default), torch.bfloat16
    or torch.float16 (or their names); the engine computes in the model's dtype and accumulates
    metrics in float32.
    """
    device = torch.device(device) if device is not None else default_device()
    dtype = _dtype(dtype)
    if name in TEACHING_NAMES:
        model = load_teaching_model(device)
        return model.to(dtype) if dtype != torch.float32 else model
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name string or None, got {type(name).__name__}.")
    return load_pretrained(name, device, dtype)


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    value = names.get(dtype.removeprefix("torch."), dtype) if isinstance(dtype, str) else dtype
    if value not in names.values():
        raise ValueError(f"dtype must be one of {', '.join(names)} (or the torch dtype), got {dtype!r}.")
    return value


__all__ = ["build_teaching_model", "default_device", "load_model"]
