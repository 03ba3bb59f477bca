"""Read dictionary_learning checkpoints (Marks et al.): a folder with `ae.pt` (a state dict) and `config.json`.

`ae.pt` is read with `torch.load(weights_only=True)`: tensors only, nothing else is unpickled.
Parameter layouts by `config["trainer"]["dict_class"]` (x_c = x - input bias):
- AutoEncoder: bias [d], encoder.weight [F, d], encoder.bias [F], decoder.weight [d, F];
  f = relu(x_c @ encoder.weight.T + encoder.bias), x_hat = f @ decoder.weight.T + bias.
- AutoEncoderNew: as AutoEncoder without input centring, decoder.bias instead of bias.
- AutoEncoderTopK / BatchTopKSAE: encoder, decoder, b_dec, k, threshold (BatchTopK infers with
  relu(pre) > threshold).
- GatedAutoEncoder: decoder_bias, encoder.weight, gate_bias, r_mag, mag_bias, decoder.weight.
- JumpReluAutoEncoder: W_enc, b_enc, W_dec, b_dec, threshold (b_dec not subtracted from the input).
The files do not name a TransformerLens hook: pass `hook_name=` (and `hook_name_out=` for a transcoder).
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import torch

from interpwidgets.sae.base import SAE, SAEConfig
from interpwidgets.sae.formats import SAEFormatError, sae_from_state


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    folder = path if path.is_dir() else path.parent
    weights = folder / "ae.pt"
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError) as err:
        raise SAEFormatError(
            f"{weights} could not be read as a plain state dict of tensors ({type(err).__name__}); it is corrupt or holds "
            "objects other than tensors, which interpwidgets never unpickles."
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SAEFormatError(f"{weights} does not hold a state dict of tensors.")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SAEFormatError(f"{folder} has ae.pt but no config.json; the dictionary class is unknown.")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SAEFormatError(f"{config_path} is not valid JSON ({err}).") from err
    return state, config


def _convert(dict_class: str, s: dict[str, torch.Tensor]) -> tuple[str, bool, dict[str, torch.Tensor], int | None]:
    """(architecture, subtract b_dec from input, our state dict, k) for a dictionary_learning state dict."""
    if dict_class == "AutoEncoder":
        return "relu", True, {"W_enc": s["encoder.weight"].T, "b_enc": s["encoder.bias"],
                              "W_dec": s["decoder.weight"].T, "b_dec": s["bias"]}, None
    if dict_class == "AutoEncoderNew":
        return "relu", False, {"W_enc": s["encoder.weight"].T, "b_enc": s["encoder.bias"],
                               "W_dec": s["decoder.weight"].T, "b_dec": s["decoder.bias"]}, None
    if dict_class in ("AutoEncoderTopK", "BatchTopKSAE"):
        ours = {"W_enc": s["encoder.weight"].T, "b_enc": s["encoder.bias"], "W_dec": s["decoder.weight"].T, "b_dec": s["b_dec"]}
        k = int(s["k"])
        if dict_class == "AutoEncoderTopK":
            return "topk", True, ours, k
        ours["threshold"] = torch.full_like(s["encoder.bias"], max(float(s["threshold"]), 0.0))
        return "batchtopk", True, ours, k
    if dict_class == "GatedAutoEncoder":
        return "gated", True, {"W_enc": s["encoder.weight"].T, "b_enc": s["gate_bias"], "r_mag": s["r_mag"],
                               "b_mag": s["mag_bias"], "W_dec": s["decoder.weight"].T, "b_dec": s["decoder_bias"]}, None
    if dict_class == "JumpReluAutoEncoder":
        return "jumprelu", False, {k: s[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}, None
    raise SAEFormatError(
        f"dictionary_learning class {dict_class!r} is not supported; supported: AutoEncoder, AutoEncoderNew, "
        "AutoEncoderTopK, BatchTopKSAE, GatedAutoEncoder, JumpReluAutoEncoder."
    )


def load_dictionary_learning(path: str | Path, **overrides) -> SAE:
    """A dictionary from a dictionary_learning folder (or its ae.pt); `overrides` set config fields such as hook_name."""
    path = Path(path)
    state, config = _read(path)
    trainer = config.get("trainer", {})
    dict_class = trainer.get("dict_class")
    try:
        architecture, centred, ours, k = _convert(dict_class, state)
    except KeyError as err:
        raise SAEFormatError(f"{path}: a {dict_class} state dict needs {err}, which is missing.") from err
    d_in, d_sae = ours["W_enc"].shape
    values = dict(d_in=d_in, d_sae=d_sae, architecture=architecture, k=k, apply_b_dec_to_input=centred,
                  model_name=trainer.get("lm_name"), d_out=ours["W_dec"].shape[1],
                  metadata={"dictionary_learning": {k_: trainer.get(k_) for k_ in ("dict_class", "layer", "submodule_name")}})
    values.update(overrides)
    if values.get("hook_name_out") is not None:
        values["apply_b_dec_to_input"] = False
    try:
        cfg = SAEConfig(**values)
    except (TypeError, ValueError) as err:
        raise SAEFormatError(f"{path}: {err}") from err
    return sae_from_state(cfg, {k_: v.contiguous() for k_, v in ours.items()}, str(path))
