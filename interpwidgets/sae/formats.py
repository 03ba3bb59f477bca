"""SAELens on-disk format: a folder with `cfg.json` and `sae_weights.safetensors`.

Weights: W_enc [d_in, d_sae], W_dec [d_sae, d_out], b_enc [d_sae], b_dec [d_out]; `threshold [d_sae]`
for JumpReLU; `b_gate`, `r_mag`, `b_mag` (and no b_enc) for gated. cfg.json follows SAELens 6:
top-level `architecture`, `d_in`, `d_sae`, `dtype`, `device`, `apply_b_dec_to_input`,
`normalize_activations`, `reshape_activations` (+ `k` for topk, `d_out` for transcoders) and a
`metadata` object with `hook_name`, `hook_name_out`, `model_name`, `sae_lens_version`. Our own
architecture and training facts go in `metadata["interpwidgets"]`. Pre-6 configs (hook names and
`activation_fn_str` at top level) load too.

Architecture names in SAELens are class attributes of each architecture (`saelens_name`,
`saelens_transcoder_name`, `saelens_reads`), as are its parameter renames (`param_renames`) and
extra cfg.json fields (`saelens_cfg_fields`): relu -> "standard" ("transcoder"), jumprelu and
batchtopk -> "jumprelu" ("jumprelu_transcoder"; a BatchTopK dictionary is a JumpReLU with one shared
threshold at inference), topk -> "topk", gated -> "gated". SAELens has no TopK or gated transcoder:
those save in the same layout with `d_out`, and load here but not in SAELens.

Crash safety: `save` writes each file atomically (`models.files.write_atomic`), the weights first and cfg.json
last. The weights file carries, in its safetensors metadata, the cfg.json text written with it and a save id that
cfg.json repeats (`metadata.interpwidgets.save_id`). A save killed between its two renames leaves new weights beside
the old cfg.json; the ids then differ and `load_saelens` reads the new version whole (weights and the cfg they carry),
so a reader gets the old complete SAE or the new complete one, never a mix. Folders written by SAELens (no id) and
cfg.json edited by hand (same id) load from cfg.json as before.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch

from interpwidgets.models.files import write_atomic, write_text_atomic
from interpwidgets.sae.architectures import build_sae, classes, sae_class
from interpwidgets.sae.base import SAE, SAEConfig

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
LABELS_FILE = "labels.json"  # the features' labels, beside the weights (see `interpwidgets.sae.labels`)
FORMAT_VERSION = "6.0.0"  # the SAELens cfg.json layout we write (metadata.sae_lens_version)

_UNSUPPORTED_NORMALISATION = ("constant_norm_rescale", "layer_norm")
SAVE_ID_KEY = "interpwidgets_save_id"  # safetensors metadata: the id of the save that wrote the weights
SAVED_CFG_KEY = "interpwidgets_cfg"  # safetensors metadata: the cfg.json text written with these weights
INCOMPLETE_HINT = "The folder is incomplete (an interrupted copy or download?): save the SAE there again or copy the folder anew."


class SAEFormatError(ValueError):
    """A file or folder that is not a dictionary we can read."""


def saelens_architecture(sae: SAE) -> str:
    """The SAELens `architecture` string this dictionary is saved under."""
    return sae.saelens_architecture(sae.is_transcoder)


def saelens_names() -> dict[str, tuple[str, bool]]:
    """{SAELens cfg.json `architecture` string: (our architecture, whether it marks a transcoder)}."""
    return {name: (cls.architecture, transcoder) for cls in classes() for name, transcoder in cls.saelens_names_read().items()}


def saelens_state_dict(sae: SAE) -> dict[str, torch.Tensor]:
    """The dictionary's weights under SAELens's parameter names (float32, contiguous, on CPU)."""
    state = {name: p.detach().float().cpu().contiguous() for name, p in sae.state_dict().items()}
    for ours, theirs in sae.param_renames.items():
        state[theirs] = state.pop(ours)
    return state


def from_saelens_names(architecture: str, state: dict[str, torch.Tensor]) -> None:
    """Rename SAELens's parameter names in `state` to ours for `architecture` (in place)."""
    for ours, theirs in sae_class(architecture).param_renames.items():
        if theirs in state:
            state[ours] = state.pop(theirs)


def saelens_cfg(sae: SAE, dtype: str = "float32") -> dict[str, Any]:
    """The cfg.json contents for `sae` (`dtype` is the dtype SAELens loads the weights in)."""
    c = sae.cfg
    cfg: dict[str, Any] = {
        "architecture": saelens_architecture(sae), "d_in": c.d_in, "d_sae": c.d_sae, "dtype": dtype, "device": "cpu",
        "apply_b_dec_to_input": bool(c.apply_b_dec_to_input), "normalize_activations": "none",
        "reshape_activations": "none",
    }
    cfg.update(sae.saelens_cfg_fields())
    if c.is_transcoder:
        cfg["d_out"] = c.d_out
    cfg["metadata"] = {
        "sae_lens_version": FORMAT_VERSION, "sae_lens_training_version": FORMAT_VERSION,
        "model_name": c.model_name, "hook_name": c.hook_name, "hook_name_out": c.hook_name_out,
        "hook_head_index": None, "prepend_bos": True,
        "interpwidgets": {"architecture": c.architecture, "k": c.k, "metadata": c.metadata},
    }
    return cfg


def save(sae: SAE, path: str | os.PathLike, storage_dtype: torch.dtype = torch.float32) -> Path:
    """Write `sae` to the folder `path` in SAELens format; returns the folder.

    Each file is written to a temporary name and renamed into place, weights first and cfg.json last, so an
    interrupted save (also `kill -9`) leaves the old SAE or the new one, never a torn file or a mix (see the module
    docstring). The features' labels go to labels.json beside the weights (written last, atomically; an older
    labels.json is removed when the SAE has none, so it cannot label other weights). `storage_dtype=torch.float16`
    halves the size on disk (loading always gives float32 parameters).
    """
    from safetensors.torch import save_file

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder; choose another path to save the SAE to.")
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.to(storage_dtype) for k, v in saelens_state_dict(sae).items()}
    cfg = saelens_cfg(sae)
    save_id = uuid.uuid4().hex
    cfg["metadata"]["interpwidgets"]["save_id"] = save_id
    text = json.dumps(cfg, indent=2)
    write_atomic(folder / WEIGHTS_FILE, lambda tmp: save_file(state, tmp, metadata={SAVE_ID_KEY: save_id, SAVED_CFG_KEY: text}))
    write_text_atomic(folder / CFG_FILE, text)
    if len(sae.labels):
        sae.labels.save(folder / LABELS_FILE)
    else:
        (folder / LABELS_FILE).unlink(missing_ok=True)
    return folder


def _read_cfg(folder: Path) -> dict[str, Any]:
    cfg_path = folder / CFG_FILE
    if not cfg_path.is_file():
        raise SAEFormatError(f"{folder} has no {CFG_FILE}: not an SAELens-format SAE folder.")
    return _parse_cfg(cfg_path.read_bytes(), str(cfg_path))


def _parse_cfg(raw: bytes | str, source: str) -> dict[str, Any]:
    try:
        cfg = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SAEFormatError(f"{source} is not valid JSON ({err}); the file is corrupt. {INCOMPLETE_HINT}") from err
    if not isinstance(cfg, dict):
        raise SAEFormatError(f"{source} holds a JSON {type(cfg).__name__}, not an object.")
    return cfg


def _saved_with(path: Path) -> tuple[str | None, str | None]:
    """(save id, cfg.json text) recorded in the metadata of the weights file `path` by `save` (None, None if not ours)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None, None  # unreadable: _read_weights says so
    return meta.get(SAVE_ID_KEY), meta.get(SAVED_CFG_KEY)


def _folder_cfg(folder: Path) -> dict[str, Any]:
    """The cfg that goes with the weights in `folder`: cfg.json, unless the weights were written by a later save
    whose cfg.json never landed (killed between the two renames; see the module docstring)."""
    weights = folder / WEIGHTS_FILE
    saved_id, saved_text = _saved_with(weights) if weights.is_file() else (None, None)
    if not (folder / CFG_FILE).is_file():
        if saved_text is None:
            raise SAEFormatError(f"{folder} has no {CFG_FILE}: not an SAELens-format SAE folder, or an incomplete one. {INCOMPLETE_HINT}")
        return _parse_cfg(saved_text, f"the cfg.json saved in {weights}")
    cfg = _read_cfg(folder)
    cfg_id = ((cfg.get("metadata") or {}).get("interpwidgets") or {}).get("save_id")
    if saved_text is not None and cfg_id is not None and saved_id != cfg_id:
        return _parse_cfg(saved_text, f"the cfg.json saved in {weights}")
    return cfg


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise SAEFormatError(f"{path} is missing: the SAE folder has a config but no weights. {INCOMPLETE_HINT}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise SAEFormatError(f"{path} is not a readable safetensors file ({err}); the file is corrupt or truncated. {INCOMPLETE_HINT}") from err


def config_from_saelens(cfg: dict[str, Any], **overrides) -> SAEConfig:
    """Our `SAEConfig` from an SAELens cfg.json dict (versions 5 and 6); `overrides` win."""
    meta = cfg.get("metadata") or {}
    ours = meta.get("interpwidgets") or {}
    name = cfg.get("architecture", "standard")
    if name == "standard" and cfg.get("activation_fn_str", cfg.get("activation_fn")) == "topk":
        name = "topk"  # SAELens 5 stored TopK as a standard SAE with a topk activation
    readers = saelens_names()
    if name not in readers:
        raise SAEFormatError(f"SAE architecture {name!r} is not supported; supported: {sorted(readers)}.")
    architecture, transcoder = readers[name]
    architecture = ours.get("architecture", architecture)
    try:
        cls = sae_class(architecture)
    except ValueError as err:
        raise SAEFormatError(f"cfg.json describes an invalid SAE: {err}") from err
    norm = cfg.get("normalize_activations", "none")
    if norm in _UNSUPPORTED_NORMALISATION:
        raise SAEFormatError(
            f"normalize_activations={norm!r} rescales each input at run time, which interpwidgets does not do; "
            "use an SAE with normalisation folded into its weights ('none' or 'expected_average_only_in')."
        )
    k = ours.get("k") or cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    values = dict(
        d_in=cfg.get("d_in"), d_sae=cfg.get("d_sae"), architecture=architecture,
        hook_name=meta.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point") or "",
        hook_name_out=meta.get("hook_name_out") or cfg.get("hook_name_out"),
        d_out=cfg.get("d_out"), k=int(k) if k is not None and cls.uses_k else None,
        apply_b_dec_to_input=False if transcoder else bool(cfg.get("apply_b_dec_to_input", True)),
        model_name=meta.get("model_name") or cfg.get("model_name"), metadata=dict(ours.get("metadata") or {}),
    )
    values.update(overrides)
    if transcoder and not values["hook_name_out"]:
        raise SAEFormatError(
            f"This {name!r} dictionary does not say which hook it writes; pass hook_name_out='blocks.L.hook_mlp_out' (or the right hook)."
        )
    try:
        return SAEConfig(**values)
    except (TypeError, ValueError) as err:
        raise SAEFormatError(f"cfg.json describes an invalid SAE: {err}") from err


def _fold_saelens_extras(cfg: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    """Fold SAELens options we do not model separately into the plain weights (in place)."""
    scale = state.pop("scaling_factor", state.pop("finetuning_scaling_factor", None))
    if scale is not None:  # features are scaled before decoding: f * s @ W_dec
        state["W_dec"] = state["W_dec"] * scale[:, None]
    if cfg.get("rescale_acts_by_decoder_norm"):  # topk: pre * |W_dec|, decode f / |W_dec|
        norms = state["W_dec"].norm(dim=-1)
        state["W_enc"] = state["W_enc"] * norms
        state["b_enc"] = state["b_enc"] * norms
        state["W_dec"] = state["W_dec"] / norms[:, None]


def sae_from_state(cfg: SAEConfig, state: dict[str, torch.Tensor], source: str) -> SAE:
    """Build the dictionary for `cfg` and fill it from `state`, checking every name and shape."""
    sae = build_sae(cfg)
    expected = sae.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise SAEFormatError(f"{source}: weights do not match a {cfg.architecture} dictionary (missing {missing}, unexpected {unexpected}).")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise SAEFormatError(f"{source}: {name} has shape {tuple(state[name].shape)}, expected {tuple(tensor.shape)} from its config.")
        if not torch.isfinite(state[name]).all():
            raise SAEFormatError(f"{source}: {name} contains NaN or inf; the weights are corrupt.")
    sae.load_state_dict({k: v.float() for k, v in state.items()})
    return sae.eval()


def load_saelens(path: str | os.PathLike, **overrides) -> SAE:
    """Read an SAELens-format folder (ours or SAELens's); `overrides` replace config fields (e.g. hook_name_out)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; an SAELens SAE is a folder with {CFG_FILE} and {WEIGHTS_FILE}.")
    raw = _folder_cfg(folder)
    cfg = config_from_saelens(raw, **overrides)
    state = _read_weights(folder / WEIGHTS_FILE)
    from_saelens_names(cfg.architecture, state)
    _fold_saelens_extras(raw, state)
    if sae_class(cfg.architecture).calibrates_threshold and "threshold" not in state:
        raise SAEFormatError(
            f"{folder}: a {cfg.architecture} dictionary needs its inference threshold (calibrated at the end of "
            "training), which is missing."
        )
    return sae_from_state(cfg, state, str(folder))
