"""Read Gemma Scope SAEs and transcoders: one `params.npz` per dictionary (layout of google/gemma-scope-2b-pt-res).

Tensors: W_enc [d_in, d_sae], W_dec [d_sae, d_out], b_enc [d_sae], b_dec [d_out], threshold [d_sae] (lower-case
`w_enc`/`w_dec` read too). Gemma Scope's JumpReLU does not centre the input:

    pre = x @ W_enc + b_enc;   f = relu(pre) * (pre > threshold);   x_hat = f @ W_dec + b_dec

which is our JumpReLU with the threshold clamped at 0 (the same function for every threshold).

Hooks are inferred from the repository layout `gemma-scope-{2b|9b|27b}-{pt|it}-{kind}/layer_{L}/width_{W}/
average_l0_{N}/params.npz`, in a clone or in the Hugging Face cache (`models--google--gemma-scope-2b-pt-res/
snapshots/<sha>/layer_{L}/...`). The mapping follows SAELens's Gemma Scope loaders
(jbloomAus/SAELens, sae_lens/loading/pretrained_sae_loaders.py: get_gemma_2_config_from_hf and
get_gemma_2_transcoder_config_from_hf; circuit-tracer's gemmascope configs use the same transcoder hooks):

    res          blocks.L.hook_resid_post
    att          blocks.L.attn.hook_z, flattened: d_in = n_heads * d_head (each head's z, concatenated head by head)
    mlp          blocks.L.hook_mlp_out (after Gemma 2's post-MLP norm, in TransformerLens 3 and on the bridge alike)
    transcoders  blocks.L.ln2.hook_normalized -> blocks.L.hook_mlp_out

`ln2.hook_normalized` is x / rms(x), before the norm's weight, both in TransformerLens 3 (where SAELens and
circuit-tracer read it) and on a TransformerBridge, so a transcoder sees the values it was used with there.
Embedding SAEs (`embedding/...`, which SAELens rescales for TransformerLens's hook_embed) and files outside the
layout are not inferred: pass `hook_name=` (and `hook_name_out=` for a transcoder).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interpwidgets.sae.base import SAE
from interpwidgets.sae.external import build, require
from interpwidgets.sae.formats import SAEFormatError

PARAMS_FILE = "params.npz"
_REPOSITORY = re.compile(r"gemma-scope-(\d+b)-(pt|it)-(res|att|mlp|transcoders)$")
_LAYER = re.compile(r"layer_(\d+)")
_HOOKS = {
    "res": ("blocks.{L}.hook_resid_post", None),
    "att": ("blocks.{L}.attn.hook_z", None),
    "mlp": ("blocks.{L}.hook_mlp_out", None),
    "transcoders": ("blocks.{L}.ln2.hook_normalized", "blocks.{L}.hook_mlp_out"),
}
_NOT_INFERRED = (
    "the hook cannot be inferred, because the path does not follow Gemma Scope's layout "
    "gemma-scope-<size>-<pt|it>-<res|att|mlp|transcoders>/layer_<L>/width_<W>/average_l0_<N>/params.npz. Keep that "
    "layout, or pass the hook: hook_name='blocks.L.hook_resid_post' (res), 'blocks.L.attn.hook_z' (att), "
    "'blocks.L.hook_mlp_out' (mlp), or hook_name='blocks.L.ln2.hook_normalized', hook_name_out='blocks.L.hook_mlp_out' "
    "(transcoders)."
)


def read_params(path: Path) -> dict[str, torch.Tensor]:
    """The float32 tensors of a params.npz (no pickled objects are read), under our names."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with data:
            return {("W_" + k[2:] if k.startswith("w_") else k): torch.from_numpy(np.asarray(data[k], dtype=np.float32))
                    for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise SAEFormatError(f"{path} is not a readable .npz archive of arrays ({err}).") from err


def params_config(state: dict[str, torch.Tensor], source: str) -> dict[str, Any]:
    """Config fields of a Gemma Scope JumpReLU dictionary from its tensors; clamps `state["threshold"]` at 0."""
    require(state, ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"), source, "Gemma Scope JumpReLU dictionary")
    if state["W_enc"].ndim != 2:
        raise SAEFormatError(f"{source}: W_enc has shape {tuple(state['W_enc'].shape)}; expected [d_in, d_sae].")
    state["threshold"] = state["threshold"].clamp_min(0.0)  # relu(pre) * (pre > t) == pre * (pre > max(t, 0))
    d_in, d_sae = state["W_enc"].shape
    return dict(d_in=d_in, d_sae=d_sae, d_out=state["W_dec"].shape[-1], architecture="jumprelu", apply_b_dec_to_input=False)


def infer_hooks(path: Path) -> dict[str, Any]:
    """hook_name, hook_name_out and model_name from the repository layout in `path` ({} outside it)."""
    repository = next((m for part in path.parts if (m := _REPOSITORY.search(part))), None)
    layer = next((m for part in path.parts if (m := _LAYER.fullmatch(part))), None)
    if repository is None or layer is None:
        return {}
    size, tuning, kind = repository.groups()
    hook_in, hook_out = (None if h is None else h.format(L=layer.group(1)) for h in _HOOKS[kind])
    return dict(hook_name=hook_in, hook_name_out=hook_out, model_name=f"gemma-2-{size}" + ("-it" if tuning == "it" else ""))


def load_gemma_scope(path: str | Path, **overrides) -> SAE:
    """A Gemma Scope dictionary from its params.npz (or the folder holding it); `overrides` set config fields."""
    path = Path(path)
    file = path / PARAMS_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist; a Gemma Scope dictionary is a {PARAMS_FILE} file.")
    state = read_params(file)
    values = params_config(state, str(file))
    inferred = infer_hooks(file)
    if not inferred and not overrides.get("hook_name"):
        raise SAEFormatError(f"{file}: {_NOT_INFERRED}")
    values.update(inferred, metadata={"format": "gemma_scope", "source": str(file)})
    return build(values, overrides, state, str(file))
