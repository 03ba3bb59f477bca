"""Read EleutherAI sparsify SAEs and transcoders: a folder per hookpoint with `cfg.json` and `sae.safetensors`.

Layout of sparsify's `SparseCoder.save_to_disk` / `load_from_disk` (EleutherAI/sparsify, sparsify/sparse_coder.py and
config.py): cfg.json holds the SparseCoderConfig (`activation`, `k`, `num_latents`, or `expansion_factor` when
`num_latents` is 0, `transcode`, `skip_connection`, ...) plus `d_in`; sae.safetensors holds `encoder.weight
[d_sae, d_in]`, `encoder.bias [d_sae]`, `W_dec [d_sae, d_in]`, `b_dec [d_in]`, and `W_skip [d_in, d_in]` with a skip
connection. sparsify computes (TopK, Gao et al. 2024)

    f = topk_k(relu((x - b_dec) @ encoder.weight.T + encoder.bias));   y = f @ W_dec + b_dec

without the `- b_dec` for a transcoder. So ours has W_enc = encoder.weight.T, W_dec = W_dec and
apply_b_dec_to_input = not transcode (sparsify's own encode, which SAELens's sparsify loader does not follow: it
derives that flag from normalize_decoder).

A hookpoint is the name of the Hugging Face module sparsify hooked, relative to the base model (`layers.L` for
Llama, Pythia, Gemma, Qwen; `h.L` for GPT-2; subfolder names of a run). An SAE reads the module's output, a
transcoder its input and output; on a TransformerBridge these are the hooks of the same module:

    layers.L                                input blocks.L.hook_resid_pre   output blocks.L.hook_resid_post
    layers.L.mlp                            input blocks.L.mlp.hook_in      output blocks.L.mlp.hook_out
    layers.L.self_attn / .attn / .attention input blocks.L.attn.hook_in     output blocks.L.attn.hook_out

`mlp.hook_out` and `attn.hook_out` equal `hook_mlp_out` and `hook_attn_out` except where a norm follows the
sublayer (Gemma 2 and 3): there they are the sublayer's output before that norm, which is what sparsify read.
`mlp.hook_in` is the MLP's input, after ln2 and its weight. A folder of hookpoint folders loads as an SAESet.
Refused: the groupmax activation, signed TopK (an early option) and nonzero skip connections.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from interpwidgets.sae.base import SAE
from interpwidgets.sae.external import build, drop_skip, require
from interpwidgets.sae.formats import SAEFormatError, _read_cfg, _read_weights
from interpwidgets.sae.sets import SAESet

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"
_HOOKPOINT = re.compile(r"(?:layers|h)\.(\d+)(?:\.(mlp|self_attn|attn|attention))?")
_MODULE_HOOKS = {  # module -> (its input hook, its output hook), inside blocks.L
    None: ("hook_resid_pre", "hook_resid_post"),
    "mlp": ("mlp.hook_in", "mlp.hook_out"),
    "self_attn": ("attn.hook_in", "attn.hook_out"),
    "attn": ("attn.hook_in", "attn.hook_out"),
    "attention": ("attn.hook_in", "attn.hook_out"),
}
_DEFAULTS = {"k": 32, "expansion_factor": 32}  # SparseCoderConfig's, for fields a cfg.json leaves out


def is_sparsify_folder(path: Path) -> bool:
    """True for a folder holding one sparsify dictionary."""
    return (path / CFG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def hookpoint_hooks(hookpoint: str, transcode: bool) -> tuple[str, str | None] | None:
    """(hook_name, hook_name_out) on a TransformerBridge for a sparsify hookpoint; None if it is not one we map."""
    match = _HOOKPOINT.fullmatch(hookpoint)
    if match is None:
        return None
    layer, module = match.groups()
    hook_in, hook_out = (f"blocks.{layer}.{h}" for h in _MODULE_HOOKS[module])
    return (hook_in, hook_out) if transcode else (hook_out, None)


def _model_name(folder: Path) -> str | None:
    """The model in the run's config.json beside the hookpoint folders, if there is one."""
    try:
        return json.loads((folder.parent / "config.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None


def _config_values(cfg: dict, folder: Path) -> dict:
    """Our config fields for a sparsify cfg.json (hooks from the folder's hookpoint name, None if unmapped)."""
    source = str(folder)
    if cfg.get("activation", "topk") != "topk":
        raise SAEFormatError(f"{source}: activation {cfg['activation']!r} is not supported; interpwidgets reads TopK sparse coders only.")
    if cfg.get("signed"):
        raise SAEFormatError(f"{source}: signed TopK (keeping negative activations) is not supported; ours keep positive ones only.")
    d_in = cfg.get("d_in")
    if not isinstance(d_in, int):
        raise SAEFormatError(f"{source}: {CFG_FILE} has no integer d_in (got {d_in!r}), which sparsify's save_to_disk writes.")
    transcode = bool(cfg.get("transcode", False))
    hook_name, hook_name_out = hookpoint_hooks(folder.name, transcode) or (None, None)
    return dict(
        d_in=d_in, d_sae=cfg.get("num_latents") or d_in * cfg.get("expansion_factor", _DEFAULTS["expansion_factor"]),
        architecture="topk", k=cfg.get("k", _DEFAULTS["k"]), hook_name=hook_name, hook_name_out=hook_name_out,
        apply_b_dec_to_input=not transcode, model_name=_model_name(folder),
        metadata={"format": "sparsify", "source": source, "hookpoint": folder.name},
    )


def load_sparsify(path: str | Path, **overrides) -> SAE:
    """A dictionary from one sparsify hookpoint folder; `overrides` set config fields (e.g. hook_name)."""
    folder = Path(path)
    source = str(folder)
    values = _config_values(_read_cfg(folder), folder)
    transcode = not values["apply_b_dec_to_input"]
    if values["hook_name"] is None and not (overrides.get("hook_name") and (overrides.get("hook_name_out") or not transcode)):
        needed = "hook_name= and hook_name_out= (it is a transcoder)" if transcode else "hook_name="
        raise SAEFormatError(
            f"{source}: the hook cannot be inferred from the hookpoint name {folder.name!r} (known: layers.L, layers.L.mlp, "
            f"layers.L.self_attn|attn|attention, or h.L... for GPT-2); pass {needed}, e.g. 'blocks.L.hook_resid_post'."
        )
    state = _read_weights(folder / WEIGHTS_FILE)
    require(state, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"), source, "sparsify sparse coder")
    drop_skip(state, "W_skip", source)
    ours = {"W_enc": state.pop("encoder.weight").T, "b_enc": state.pop("encoder.bias"),
            "W_dec": state.pop("W_dec"), "b_dec": state.pop("b_dec")}
    if state:
        raise SAEFormatError(f"{source}: unexpected tensors {sorted(state)} for a sparsify TopK sparse coder.")
    return build(values, overrides, ours, source)


def load_sparsify_set(path: str | Path, **overrides) -> SAESet:
    """Every hookpoint folder of a sparsify run folder, as an SAESet; `overrides` apply to each."""
    folders = sorted(p for p in Path(path).iterdir() if p.is_dir() and is_sparsify_folder(p))
    if not folders:
        raise SAEFormatError(f"{path} holds no sparsify hookpoint folders ({CFG_FILE} + {WEIGHTS_FILE}).")
    return SAESet.of(load_sparsify(folder, **overrides) for folder in folders)
