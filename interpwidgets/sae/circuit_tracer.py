"""Read circuit-tracer transcoder sets: a `config.yaml` and one transcoder file per layer.

Layouts of safety-research/circuit-tracer (circuit_tracer/utils/hf_utils.py `load_transcoders`,
circuit_tracer/transcoder/single_layer_transcoder.py `load_transcoder_set`, and the first releases' configs/*.yaml).
config.yaml holds `feature_input_hook` and `feature_output_hook` (hook names inside a block), optionally
`model_name`, `model_kind` (only "transcoder_set": cross-layer transcoders are refused), `activation` ("relu", or
"topk" with `k`; otherwise JumpReLU where the file has a threshold, else ReLU) and `transcoders`: the per-layer
files in layer order, or, in the first releases, entries `{id, layer, filepath}`. Without `transcoders` the files
are `layer_{L}.safetensors` beside the config. Paths are local (relative ones from the config's folder) or
`hf://org/repo/file?revision=r`, read from the local Hugging Face cache: nothing is downloaded.

Per-layer safetensors: `W_enc [d_sae, d_model]`, `W_dec [d_sae, d_model]`, `b_enc [d_sae]`, `b_dec [d_model]`,
optional `activation_function.threshold` (or `threshold`) `[d_sae]`, `k`, `W_skip [d_model, d_model]`. Also read:
Gemma Scope 2's names (`w_enc [d_model, d_sae]`, `w_dec`, `affine_skip_connection`), the first releases'
`W_dec [d_model, d_sae]` (matrices are oriented by the latent count, the stored layout winning when square), and
`.npz` files, which are Gemma Scope params (see `gemma_scope`). circuit-tracer computes

    f = act(x @ W_enc.T + b_enc),  act: relu | pre * (pre > threshold) | top-k;   y = f @ W_dec + b_dec (+ x @ W_skip.T)

Hooks: transcoder L reads `blocks.L.{feature_input_hook}` and writes `blocks.L.{feature_output_hook}`. These are
TransformerLens 3 names, and a TransformerBridge's hooks of the same names hold the same values: `ln2.hook_normalized`
is x / rms(x) before the norm's weight in both (Gemma Scope transcoders: ln2.hook_normalized -> hook_mlp_out),
circuit-tracer's `mlp.hook_in` / `mlp.hook_out` wrap the MLP module as the bridge's do, and `hook_resid_mid` /
`hook_mlp_out` are the usual ones (its Llama transcoders: hook_resid_mid -> mlp.hook_out). `hook_name=` and
`hook_name_out=` overrides may hold "{layer}".

Where ours differ: circuit-tracer's TopK keeps the k largest pre-activations even when negative and ours zeroes the
negative ones (the same whenever k or more pre-activations are positive); Gemma Scope `.npz` thresholds keep Gemma
Scope's relu, which circuit-tracer drops (the same for positive thresholds, as Gemma Scope's are); skip connections
are refused unless zero.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from interpwidgets.sae.base import SAE
from interpwidgets.sae.external import build, drop_skip, latents_first, require
from interpwidgets.sae.formats import SAEFormatError, _read_weights
from interpwidgets.sae.gemma_scope import params_config, read_params
from interpwidgets.sae.sets import SAESet

CONFIG_FILE = "config.yaml"
_LAYER_FILE = re.compile(r"layer_(\d+)\.(?:safetensors|npz)")
_NAMES = {"w_enc": "W_enc", "w_dec": "W_dec", "activation_function.threshold": "threshold", "affine_skip_connection": "W_skip"}


def read_config(path: Path) -> dict[str, Any]:
    """The parsed config.yaml of a transcoder set, checked for the fields we need."""
    import yaml

    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise SAEFormatError(f"{path} is not valid YAML ({err}).") from err
    if not isinstance(config, dict):
        raise SAEFormatError(f"{path} does not hold a YAML mapping; a circuit-tracer config has feature_input_hook, feature_output_hook, transcoders.")
    kind = config.get("model_kind", "transcoder_set")
    if kind != "transcoder_set":
        raise SAEFormatError(f"{path}: model_kind {kind!r} is not supported; interpwidgets reads per-layer transcoder sets (model_kind: transcoder_set).")
    missing = [k for k in ("feature_input_hook", "feature_output_hook") if not isinstance(config.get(k), str)]
    if missing:
        raise SAEFormatError(f"{path} lacks {missing}: the hooks (inside a block) the transcoders read and write, e.g. 'ln2.hook_normalized'.")
    return config


def _cached_hf_file(uri: str) -> Path:
    """The local copy of `hf://org/repo/file?revision=r` in the Hugging Face cache."""
    from urllib.parse import parse_qs, urlparse

    from huggingface_hub import try_to_load_from_cache

    parsed = urlparse(uri)
    name, _, filename = parsed.path.lstrip("/").partition("/")
    repo_id, revision = f"{parsed.netloc}/{name}", parse_qs(parsed.query).get("revision", [None])[0]
    found = try_to_load_from_cache(repo_id, filename, revision=revision)
    if not isinstance(found, str):
        raise FileNotFoundError(
            f"{uri} is not in the local Hugging Face cache, and interpwidgets never downloads: fetch it first "
            f"(huggingface_hub.hf_hub_download({repo_id!r}, {filename!r}, revision={revision!r})) or point the config at a local copy."
        )
    return Path(found)


def _resolve(ref: str, folder: Path) -> Path:
    if ref.startswith("hf://"):
        return _cached_hf_file(ref)
    path = Path(ref).expanduser()
    if not path.is_absolute() and (folder / path).is_file():
        path = folder / path
    if not path.is_file():
        raise FileNotFoundError(f"Transcoder file {ref} not found (looked beside {folder} and from the working directory).")
    return path


def layer_files(config: dict[str, Any], folder: Path) -> dict[int, Path]:
    """{layer: local file} for a set's config, in layer order."""
    entries = config.get("transcoders")
    if entries is None:
        files = {int(m.group(1)): p for p in folder.iterdir() if (m := _LAYER_FILE.fullmatch(p.name))}
    else:
        pairs = [(e.get("layer"), e.get("filepath")) if isinstance(e, dict) else (i, e) for i, e in enumerate(entries)]
        if not all(isinstance(layer, int) and isinstance(ref, str) for layer, ref in pairs):
            raise SAEFormatError(f"transcoders in the config of {folder} must be file paths, or entries with an integer layer and a filepath.")
        files = {layer: _resolve(ref, folder) for layer, ref in pairs}
    if not files:
        raise SAEFormatError(f"The transcoder set in {folder} names no transcoder files.")
    return dict(sorted(files.items()))


def read_transcoder(file: Path, activation: str | None = None, k: int | None = None) -> tuple[dict[str, Any], dict]:
    """(config fields, our state dict) of one per-layer transcoder file; `activation`/`k` as in config.yaml."""
    source = str(file)
    if file.suffix == ".npz":
        state = read_params(file)
        return params_config(state, source), state
    state = {_NAMES.get(name, name): t for name, t in _read_weights(file).items()}
    require(state, ("W_enc", "W_dec", "b_enc", "b_dec"), source, "circuit-tracer transcoder")
    drop_skip(state, "W_skip", source)
    if state["b_enc"].ndim != 1:
        raise SAEFormatError(f"{source}: b_enc has shape {tuple(state['b_enc'].shape)}; expected [d_sae].")
    d_sae = state["b_enc"].shape[0]
    ours = {"W_enc": latents_first(state.pop("W_enc"), d_sae, "W_enc", source).T,
            "W_dec": latents_first(state.pop("W_dec"), d_sae, "W_dec", source),
            "b_enc": state.pop("b_enc"), "b_dec": state.pop("b_dec")}
    stored_k = state.pop("k", None)
    topk = activation == "topk" or (activation != "relu" and stored_k is not None)
    if not topk and activation != "relu" and "threshold" in state:
        ours["threshold"] = state.pop("threshold")
    if state:
        raise SAEFormatError(f"{source}: unexpected tensors {sorted(state)} for a circuit-tracer {activation or 'relu'} transcoder.")
    if topk:
        k = k if k is not None else (None if stored_k is None else int(stored_k))
        if k is None:
            raise SAEFormatError(f"{source}: a top-k transcoder needs k; give it in config.yaml (k: ...).")
    architecture = "topk" if topk else ("jumprelu" if "threshold" in ours else "relu")
    values = dict(d_in=ours["W_enc"].shape[0], d_sae=d_sae, d_out=ours["b_dec"].shape[0], architecture=architecture,
                  k=k if topk else None, apply_b_dec_to_input=False)
    return values, ours


def _per_layer(overrides: dict[str, Any], layer: int) -> dict[str, Any]:
    return {k: v.format(layer=layer) if isinstance(v, str) else v for k, v in overrides.items()}


def _transcoder(file: Path, layer: int | None, config: dict[str, Any] | None, overrides: dict[str, Any]) -> SAE:
    config = config or {}
    values, state = read_transcoder(file, config.get("activation"), config.get("k"))
    values.update(model_name=config.get("model_name"), metadata={"format": "circuit_tracer", "source": str(file)})
    if config and layer is not None:
        values.update(hook_name=f"blocks.{layer}.{config['feature_input_hook']}",
                      hook_name_out=f"blocks.{layer}.{config['feature_output_hook']}")
        overrides = _per_layer(overrides, layer)
    elif not (overrides.get("hook_name") and overrides.get("hook_name_out")):
        raise SAEFormatError(
            f"{file}: the hooks cannot be inferred (no {CONFIG_FILE} with feature_input_hook / feature_output_hook beside "
            "it, or no layer_<L> in its name); pass hook_name='blocks.L.ln2.hook_normalized', "
            "hook_name_out='blocks.L.hook_mlp_out' (or the hooks it was trained on)."
        )
    return build(values, overrides, state, str(file))


def load_circuit_tracer_set(path: str | Path, **overrides) -> SAESet:
    """The transcoders of a circuit-tracer config.yaml (or the folder holding it), as an SAESet keyed by input hook."""
    path = Path(path)
    file = path / CONFIG_FILE if path.is_dir() else path
    config = read_config(file)
    return SAESet.of(_transcoder(f, layer, config, overrides) for layer, f in layer_files(config, file.parent).items())


def load_circuit_tracer_transcoder(path: str | Path, **overrides) -> SAE:
    """One per-layer transcoder file; hooks from the config.yaml beside it, else from `overrides`."""
    file = Path(path)
    config_file = file.parent / CONFIG_FILE
    config = read_config(config_file) if config_file.is_file() else None
    match = _LAYER_FILE.fullmatch(file.name)
    return _transcoder(file, int(match.group(1)) if match else None, config, overrides)
