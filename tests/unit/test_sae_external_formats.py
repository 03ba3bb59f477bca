"""Gemma Scope, sparsify and circuit-tracer files, written here in each library's own on-disk layout with known
random weights, load through `iw.sae.load` into dictionaries that compute what that library computes, at the
hooks it read; malformed files are refused with errors that name the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

import interpwidgets as iw
from interpwidgets.models.families import save_random_family
from interpwidgets.sae import SAEFormatError, SAESet, load
from interpwidgets.sae.sparsify import hookpoint_hooks
from interpwidgets.sae.splicing import spliced

D, F, K = 64, 256, 8
G = torch.Generator().manual_seed(0)
PROMPT = "When Mary and John went to the store, John gave a drink to"


def rand(*shape, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=G) * scale


@pytest.fixture(scope="module")
def gemma2(tmp_path_factory):
    return iw.load_model(str(save_random_family("gemma2", tmp_path_factory.mktemp("gemma2"))), device="cpu")


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return iw.load_model(str(save_random_family("llama", tmp_path_factory.mktemp("llama"))), device="cpu")


def assert_spliced_run_is_clean_and_reads_the_hooks(model, saes: SAESet, expected_features: dict):
    """With error terms the spliced model's logits equal the clean ones, and each dictionary's features equal the
    hand computation `expected_features[hook](clean activation at hook)` (flattened per-head hooks)."""
    tokens = model.to_tokens(PROMPT)
    clean, cache = model.run_with_cache(tokens)
    with torch.no_grad(), spliced(model, saes, error_term=True) as run:
        logits = model(tokens)
    torch.testing.assert_close(logits, clean, atol=1e-4, rtol=1e-4)
    for hook, reference in expected_features.items():
        x = cache[hook].flatten(-2) if hook.endswith("hook_z") else cache[hook]
        torch.testing.assert_close(run.features[hook], reference(x), atol=1e-4, rtol=1e-4)


# ---- Gemma Scope ----------------------------------------------------------------------------------------


def gemma_scope_params(d_in: int = D, d_out: int | None = None) -> dict[str, np.ndarray]:
    """Random Gemma Scope tensors; a few thresholds negative, where Gemma Scope's relu still zeroes pre < 0."""
    d_out = d_in if d_out is None else d_out
    threshold = rand(F).abs() * 0.5
    threshold[:16] = -0.3
    p = {"W_enc": rand(d_in, F, scale=d_in**-0.5), "W_dec": rand(F, d_out, scale=0.1), "b_enc": rand(F, scale=0.2),
         "b_dec": rand(d_out, scale=0.1), "threshold": threshold}
    return {k: v.numpy() for k, v in p.items()}


def write_gemma_scope(root: Path, repository: str, layer: int, params: dict[str, np.ndarray]) -> Path:
    """params.npz at `repository/layer_L/width_16k/average_l0_50/`, as in google/gemma-scope-2b-pt-res."""
    folder = root / repository / f"layer_{layer}" / "width_16k" / "average_l0_50"
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **params)
    return folder / "params.npz"


def gemma_scope_encode(p: dict[str, np.ndarray], x: torch.Tensor) -> torch.Tensor:
    """Gemma Scope's JumpReLU: pre = x @ W_enc + b_enc; f = relu(pre) * (pre > threshold)."""
    pre = x @ torch.from_numpy(p["W_enc"]) + torch.from_numpy(p["b_enc"])
    return torch.relu(pre) * (pre > torch.from_numpy(p["threshold"]))


def gemma_scope_decode(p: dict[str, np.ndarray], f: torch.Tensor) -> torch.Tensor:
    return f @ torch.from_numpy(p["W_dec"]) + torch.from_numpy(p["b_dec"])


def test_gemma_scope_residual_sae_computes_gemma_scopes_jumprelu_from_file_or_folder(tmp_path):
    """A res params.npz (as a file or its folder) encodes without centring the input, with relu(pre) * (pre > t)
    even for negative thresholds, decodes f @ W_dec + b_dec, and reads blocks.L.hook_resid_post."""
    p = gemma_scope_params()
    file = write_gemma_scope(tmp_path, "gemma-scope-2b-pt-res", 3, p)
    x = rand(32, D)
    for source in (file, file.parent):
        sae = load(source)
        f = gemma_scope_encode(p, x)
        assert 0 < (f != 0).float().mean() < 0.9
        torch.testing.assert_close(sae.encode(x), f)
        torch.testing.assert_close(sae.decode(f), gemma_scope_decode(p, f))
        torch.testing.assert_close(sae(x), gemma_scope_decode(p, f))
        assert (sae.cfg.hook_name, sae.cfg.hook_name_out, sae.cfg.model_name) == ("blocks.3.hook_resid_post", None, "gemma-2-2b")
        assert sae.cfg.architecture == "jumprelu" and sae.cfg.apply_b_dec_to_input is False


@pytest.mark.parametrize("repository, hook_name, hook_name_out, model_name", [
    ("gemma-scope-2b-pt-res", "blocks.5.hook_resid_post", None, "gemma-2-2b"),
    ("gemma-scope-2b-pt-att", "blocks.5.attn.hook_z", None, "gemma-2-2b"),
    ("gemma-scope-9b-pt-mlp", "blocks.5.hook_mlp_out", None, "gemma-2-9b"),
    ("gemma-scope-2b-pt-transcoders", "blocks.5.ln2.hook_normalized", "blocks.5.hook_mlp_out", "gemma-2-2b"),
    ("models--google--gemma-scope-9b-it-res/snapshots/0123abcd", "blocks.5.hook_resid_post", None, "gemma-2-9b-it"),
])
def test_gemma_scope_hooks_are_inferred_from_the_repository_layout_as_saelens_maps_them(
        tmp_path, repository, hook_name, hook_name_out, model_name):
    """Each Gemma Scope repository kind (also inside the Hugging Face cache) maps to SAELens's hook for it."""
    sae = load(write_gemma_scope(tmp_path, repository, 5, gemma_scope_params()))
    assert (sae.cfg.hook_name, sae.cfg.hook_name_out, sae.cfg.model_name) == (hook_name, hook_name_out, model_name)
    assert sae.is_transcoder == (hook_name_out is not None)


def test_gemma_scope_res_att_mlp_and_transcoder_splice_into_a_gemma2_bridge_at_their_hooks(tmp_path, gemma2):
    """On a tiny Gemma 2, the inferred hooks exist with the files' widths (attention SAEs read the heads' z
    concatenated), splicing them with error terms leaves the logits unchanged, and their features are the
    hand-computed JumpReLU of the clean activations there; `evaluate` runs on the transcoder."""
    d = gemma2.cfg.d_model
    assert gemma2.cfg.n_heads * gemma2.cfg.d_head == d  # so one random width serves the z-reading SAE too
    params = {("gemma-scope-2b-pt-res", 0): gemma_scope_params(d), ("gemma-scope-2b-pt-att", 1): gemma_scope_params(d),
              ("gemma-scope-2b-pt-mlp", 2): gemma_scope_params(d), ("gemma-scope-2b-pt-transcoders", 1): gemma_scope_params(d)}
    loaded = [(load(write_gemma_scope(tmp_path, repo, layer, p)), p) for (repo, layer), p in params.items()]
    saes = SAESet.of(sae for sae, _ in loaded)
    assert sorted(saes) == ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z", "blocks.1.ln2.hook_normalized",
                            "blocks.2.hook_mlp_out"]
    expected = {sae.cfg.hook_name: (lambda x, p=p: gemma_scope_encode(p, x)) for sae, p in loaded}
    assert_spliced_run_is_clean_and_reads_the_hooks(gemma2, saes, expected)
    stats = iw.sae.evaluate(gemma2, saes["blocks.1.ln2.hook_normalized"], gemma2.to_tokens(PROMPT))
    assert np.isfinite(stats["mse"]) and stats["l0"] > 0


def test_gemma_scope_refuses_missing_tensors_wrong_shapes_and_unknown_hooks(tmp_path):
    """A missing threshold, a W_dec that disagrees with b_dec, and a params.npz outside the repository layout are
    refused with errors naming the problem and the fix; hook_name= then loads it."""
    p = gemma_scope_params()
    no_threshold = {k: v for k, v in p.items() if k != "threshold"}
    with pytest.raises(SAEFormatError, match=r"needs the tensors \['threshold'\]"):
        load(write_gemma_scope(tmp_path / "a", "gemma-scope-2b-pt-res", 0, no_threshold))
    bad_b_dec = {**p, "b_dec": np.zeros(D + 1, dtype=np.float32)}
    with pytest.raises(SAEFormatError, match=r"b_dec has shape \(65,\), expected \(64,\)"):
        load(write_gemma_scope(tmp_path / "b", "gemma-scope-2b-pt-res", 0, bad_b_dec))
    (tmp_path / "mine").mkdir()
    np.savez(tmp_path / "mine" / "params.npz", **p)
    with pytest.raises(SAEFormatError, match="hook cannot be inferred.*hook_name='blocks.L.hook_resid_post'"):
        load(tmp_path / "mine")
    sae = load(tmp_path / "mine", hook_name="blocks.1.hook_resid_post")
    assert sae.cfg.hook_name == "blocks.1.hook_resid_post" and not sae.is_transcoder


# ---- EleutherAI sparsify --------------------------------------------------------------------------------


def write_sparsify(folder: Path, d_in: int = D, transcode: bool = False, dtype=torch.float32, **cfg) -> dict:
    """cfg.json + sae.safetensors as SparseCoder.save_to_disk writes them; returns the stored tensors."""
    state = {"encoder.weight": rand(F, d_in, scale=d_in**-0.5), "encoder.bias": rand(F, scale=0.1),
             "W_dec": rand(F, d_in, scale=0.1), "b_dec": rand(d_in, scale=0.5)}
    state.update(cfg.pop("tensors", {}))
    state = {k: v.to(dtype) for k, v in state.items()}
    config = {"activation": "topk", "expansion_factor": 32, "normalize_decoder": True, "num_latents": F, "k": K,
              "multi_topk": False, "skip_connection": False, "transcode": transcode, **cfg, "d_in": d_in}
    folder.mkdir(parents=True)
    save_file(state, str(folder / "sae.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(config))
    return {k: v.float() for k, v in state.items()}


def sparsify_encode(s: dict, x: torch.Tensor, transcode: bool) -> torch.Tensor:
    """sparsify's encode: relu((x - b_dec) @ encoder.weight.T + encoder.bias) (no - b_dec for a transcoder), top k."""
    pre = torch.relu((x if transcode else x - s["b_dec"]) @ s["encoder.weight"].T + s["encoder.bias"])
    top = pre.topk(K, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, top.values)


def test_sparsify_sae_subtracts_b_dec_keeps_the_top_k_and_reads_the_layer_output(tmp_path):
    """A `layers.2` SAE encodes topk(relu((x - b_dec) @ encoder.weight.T + encoder.bias)), decodes
    f @ W_dec + b_dec (W_dec stored [d_sae, d_in]) and reads blocks.2.hook_resid_post."""
    s = write_sparsify(tmp_path / "layers.2")
    sae = load(tmp_path / "layers.2")
    x = rand(32, D)
    f = sparsify_encode(s, x, transcode=False)
    assert ((f != 0).sum(-1) == K).all()
    torch.testing.assert_close(sae.encode(x), f)
    torch.testing.assert_close(sae(x), f @ s["W_dec"] + s["b_dec"])
    assert (sae.cfg.hook_name, sae.cfg.hook_name_out, sae.cfg.architecture, sae.cfg.k) == ("blocks.2.hook_resid_post", None, "topk", K)


def test_sparsify_bfloat16_transcoder_does_not_centre_its_input_and_maps_the_mlp_module(tmp_path):
    """A bfloat16 `layers.1.mlp` transcoder (transcode: true) encodes without subtracting b_dec, loads as float32,
    and reads the MLP module's input and output on the bridge (blocks.1.mlp.hook_in -> blocks.1.mlp.hook_out)."""
    s = write_sparsify(tmp_path / "layers.1.mlp", transcode=True, dtype=torch.bfloat16)
    tc = load(tmp_path / "layers.1.mlp")
    x = rand(32, D)
    f = sparsify_encode(s, x, transcode=True)
    torch.testing.assert_close(tc.encode(x), f)
    torch.testing.assert_close(tc(x), f @ s["W_dec"] + s["b_dec"])
    assert tc.W_enc.dtype == torch.float32 and tc.cfg.apply_b_dec_to_input is False
    assert (tc.cfg.hook_name, tc.cfg.hook_name_out) == ("blocks.1.mlp.hook_in", "blocks.1.mlp.hook_out")


@pytest.mark.parametrize("hookpoint, transcode, hooks", [
    ("layers.3", False, ("blocks.3.hook_resid_post", None)),
    ("layers.3", True, ("blocks.3.hook_resid_pre", "blocks.3.hook_resid_post")),
    ("layers.0.mlp", False, ("blocks.0.mlp.hook_out", None)),
    ("h.4.attn", False, ("blocks.4.attn.hook_out", None)),
    ("layers.2.self_attn", False, ("blocks.2.attn.hook_out", None)),
    ("layers.2.attention", False, ("blocks.2.attn.hook_out", None)),
    ("embed_tokens", False, None),
    ("layers.1.mlp.act_fn", False, None),
])
def test_sparsify_hookpoint_names_map_to_the_same_modules_hooks_on_the_bridge(hookpoint, transcode, hooks):
    """Module names (layers.L, h.L, .mlp, .self_attn/.attn/.attention) map to that module's output hook (an SAE)
    or input and output hooks (a transcoder); other modules are not guessed."""
    assert hookpoint_hooks(hookpoint, transcode) == hooks


def test_sparsify_run_folder_loads_as_saeset_and_splices_into_a_llama_bridge(tmp_path, llama):
    """A run folder with layers.0, layers.1.mlp (transcoder) and layers.2.self_attn loads as an SAESet whose hooks
    exist on a tiny Llama; spliced with error terms the logits are unchanged and the features are sparsify's
    encode of the clean activations at the mapped hooks; the model name comes from the run's config.json."""
    d = llama.cfg.d_model
    run = tmp_path / "run"
    stored = {"blocks.0.hook_resid_post": (write_sparsify(run / "layers.0", d), False),
              "blocks.1.mlp.hook_in": (write_sparsify(run / "layers.1.mlp", d, transcode=True), True),
              "blocks.2.attn.hook_out": (write_sparsify(run / "layers.2.self_attn", d), False)}
    (run / "config.json").write_text(json.dumps({"model": "tiny-llama", "sae": {"k": K}}))
    saes = load(run)
    assert isinstance(saes, SAESet) and sorted(saes) == sorted(stored)
    assert saes["blocks.1.mlp.hook_in"].cfg.hook_name_out == "blocks.1.mlp.hook_out"
    assert {s.cfg.model_name for s in saes.values()} == {"tiny-llama"}
    expected = {h: (lambda x, s=s, t=t: sparsify_encode(s, x, t)) for h, (s, t) in stored.items()}
    assert_spliced_run_is_clean_and_reads_the_hooks(llama, saes, expected)


def test_sparsify_refuses_groupmax_skip_connections_bad_tensors_and_unknown_hookpoints(tmp_path):
    """groupmax, a nonzero W_skip, a missing b_dec, a W_dec of the wrong width and an unmapped hookpoint name are
    refused with clear errors; an all-zero W_skip is harmless and loads; hook_name= fixes the unmapped name."""
    write_sparsify(tmp_path / "g" / "layers.0", activation="groupmax")
    with pytest.raises(SAEFormatError, match="activation 'groupmax' is not supported"):
        load(tmp_path / "g" / "layers.0")
    write_sparsify(tmp_path / "s" / "layers.0", transcode=True, skip_connection=True, tensors={"W_skip": rand(D, D)})
    with pytest.raises(SAEFormatError, match="skip connection.*cannot express"):
        load(tmp_path / "s" / "layers.0")
    write_sparsify(tmp_path / "z" / "layers.0", transcode=True, skip_connection=True, tensors={"W_skip": torch.zeros(D, D)})
    assert load(tmp_path / "z" / "layers.0").is_transcoder
    write_sparsify(tmp_path / "w" / "layers.0", tensors={"W_dec": rand(F, D + 1)})
    with pytest.raises(SAEFormatError, match=r"W_dec has shape \(256, 65\), expected \(256, 64\)"):
        load(tmp_path / "w" / "layers.0")
    folder = tmp_path / "m" / "layers.0"
    stored = write_sparsify(folder)
    save_file({k: v for k, v in stored.items() if k != "b_dec"}, str(folder / "sae.safetensors"))
    with pytest.raises(SAEFormatError, match=r"needs the tensors \['b_dec'\]"):
        load(folder)
    write_sparsify(tmp_path / "e" / "embed_tokens")
    with pytest.raises(SAEFormatError, match="cannot be inferred from the hookpoint name 'embed_tokens'.*hook_name="):
        load(tmp_path / "e" / "embed_tokens")
    assert load(tmp_path / "e" / "embed_tokens", hook_name="hook_embed").cfg.hook_name == "hook_embed"


# ---- circuit-tracer -------------------------------------------------------------------------------------


def write_circuit_tracer_layer(path: Path, d: int = D, threshold: bool = True, **extra) -> dict:
    """A per-layer transcoder file as circuit-tracer's to_safetensors writes it: W_enc and W_dec [d_sae, d_model]."""
    state = {"W_enc": rand(F, d, scale=d**-0.5), "W_dec": rand(F, d, scale=0.1), "b_enc": rand(F, scale=0.2),
             "b_dec": rand(d, scale=0.1)}
    if threshold:
        state["activation_function.threshold"] = rand(F, scale=0.3)  # some negative: circuit-tracer has no relu here
    state.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return state


def circuit_tracer_encode(s: dict, x: torch.Tensor) -> torch.Tensor:
    """circuit-tracer: pre = x @ W_enc.T + b_enc; JumpReLU pre * (pre > threshold), else relu."""
    pre = x @ s["W_enc"].T + s["b_enc"]
    t = s.get("activation_function.threshold")
    return torch.relu(pre) if t is None else pre * (pre > t)


def write_hf_cache(root: Path, repo_id: str, filename: str, write) -> None:
    """A file in the Hugging Face cache layout (refs/main -> snapshots/<sha>/filename)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    target = repo / "snapshots" / "0123abcd" / filename
    target.parent.mkdir(parents=True)
    write(target)


def test_circuit_tracer_config_loads_its_transcoders_into_an_saeset_that_splices_into_gemma2(tmp_path, gemma2, monkeypatch):
    """A config.yaml listing a relative, an absolute and an hf:// Gemma Scope params.npz (found in the local Hugging
    Face cache) loads as transcoders blocks.L.ln2.hook_normalized -> blocks.L.hook_mlp_out; each computes
    circuit-tracer's encode (no relu under the JumpReLU threshold) or Gemma Scope's, and splices into Gemma 2."""
    import huggingface_hub.constants

    d = gemma2.cfg.d_model
    s0 = write_circuit_tracer_layer(tmp_path / "set" / "layer_0.safetensors", d)
    s1 = write_circuit_tracer_layer(tmp_path / "elsewhere" / "layer_1.safetensors", d, threshold=False)
    p2 = gemma_scope_params(d)
    npz = "layer_2/width_16k/average_l0_50/params.npz"
    write_hf_cache(tmp_path / "hf", "google/gemma-scope-2b-pt-transcoders", npz, lambda path: np.savez(path, **p2))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    config = {"model_name": "google/gemma-2-2b", "model_kind": "transcoder_set", "feature_input_hook": "ln2.hook_normalized",
              "feature_output_hook": "hook_mlp_out", "scan": "tiny",
              "transcoders": ["layer_0.safetensors", str(tmp_path / "elsewhere" / "layer_1.safetensors"),
                              f"hf://google/gemma-scope-2b-pt-transcoders/{npz}"]}
    (tmp_path / "set" / "config.yaml").write_text(yaml.safe_dump(config))
    for source in (tmp_path / "set", tmp_path / "set" / "config.yaml"):
        saes = load(source)
        assert sorted(saes) == [f"blocks.{L}.ln2.hook_normalized" for L in range(3)]
        assert [tc.cfg.hook_name_out for tc in saes.transcoders] == [f"blocks.{L}.hook_mlp_out" for L in range(3)]
        assert [tc.cfg.architecture for tc in saes.transcoders] == ["jumprelu", "relu", "jumprelu"]
        assert {tc.cfg.model_name for tc in saes.values()} == {"google/gemma-2-2b"}
    x = rand(32, d)
    tc0 = saes["blocks.0.ln2.hook_normalized"]
    f = circuit_tracer_encode(s0, x)
    assert (f < 0).any()  # negative thresholds let negative pre-activations through, as in circuit-tracer
    torch.testing.assert_close(tc0.encode(x), f)
    torch.testing.assert_close(tc0(x), f @ s0["W_dec"] + s0["b_dec"])
    expected = {"blocks.0.ln2.hook_normalized": lambda x: circuit_tracer_encode(s0, x),
                "blocks.1.ln2.hook_normalized": lambda x: circuit_tracer_encode(s1, x),
                "blocks.2.ln2.hook_normalized": lambda x: gemma_scope_encode(p2, x)}
    assert_spliced_run_is_clean_and_reads_the_hooks(gemma2, saes, expected)


def test_circuit_tracer_first_release_entries_layer_files_beside_the_config_topk_and_one_file(tmp_path):
    """The first releases' `{id, layer, filepath}` entries with W_dec stored [d_model, d_sae] load (ReLU, decoder
    transposed; a hook override may hold "{layer}"); without a `transcoders` list the layer_L.safetensors beside the config load, as top-k with the
    config's k; one layer file alone takes its hooks from the config beside it."""
    old = write_circuit_tracer_layer(tmp_path / "old" / "tc0.safetensors", threshold=False)
    old["W_dec"] = old["W_dec"].T.contiguous()
    save_file(old, str(tmp_path / "old" / "tc0.safetensors"))
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump({
        "model_name": "meta-llama/Llama-3.2-1B", "feature_input_hook": "hook_resid_mid", "feature_output_hook": "mlp.hook_out",
        "transcoders": [{"id": "relu-0", "layer": 0, "filepath": "tc0.safetensors"}]}))
    tc = load(tmp_path / "old")["blocks.0.hook_resid_mid"]
    x = rand(32, D)
    f = torch.relu(x @ old["W_enc"].T + old["b_enc"])
    torch.testing.assert_close(tc.encode(x), f)
    torch.testing.assert_close(tc(x), f @ old["W_dec"].T + old["b_dec"])
    assert tc.cfg.hook_name_out == "blocks.0.mlp.hook_out" and tc.cfg.architecture == "relu"
    assert sorted(load(tmp_path / "old", hook_name="blocks.{layer}.ln2.hook_out")) == ["blocks.0.ln2.hook_out"]

    layers = {L: write_circuit_tracer_layer(tmp_path / "topk" / f"layer_{L}.safetensors", threshold=False) for L in (0, 1)}
    (tmp_path / "topk" / "config.yaml").write_text(yaml.safe_dump({
        "model_kind": "transcoder_set", "feature_input_hook": "mlp.hook_in", "feature_output_hook": "mlp.hook_out",
        "activation": "topk", "k": K}))
    saes = load(tmp_path / "topk")
    assert sorted(saes) == ["blocks.0.mlp.hook_in", "blocks.1.mlp.hook_in"]
    pre = x @ layers[1]["W_enc"].T + layers[1]["b_enc"]
    assert (pre > 0).sum(-1).min() >= K  # where circuit-tracer's TopK (no relu) and ours agree
    top = pre.topk(K, dim=-1)
    torch.testing.assert_close(saes["blocks.1.mlp.hook_in"].encode(x), torch.zeros_like(pre).scatter(-1, top.indices, top.values))
    single = load(tmp_path / "topk" / "layer_1.safetensors")
    assert (single.cfg.hook_name, single.cfg.hook_name_out, single.cfg.k) == ("blocks.1.mlp.hook_in", "blocks.1.mlp.hook_out", K)


def test_circuit_tracer_refuses_skip_connections_clts_bad_files_and_unknown_hooks(tmp_path):
    """A nonzero W_skip, a cross-layer transcoder config, a missing tensor, an hf:// file not in the local cache and
    a lone layer file without config are refused with clear errors; a zero W_skip loads; hook overrides fix the last."""
    write_circuit_tracer_layer(tmp_path / "s" / "layer_0.safetensors", W_skip=rand(D, D))
    hooks = {"feature_input_hook": "hook_resid_mid", "feature_output_hook": "mlp.hook_out"}
    (tmp_path / "s" / "config.yaml").write_text(yaml.safe_dump(hooks))
    with pytest.raises(SAEFormatError, match="skip connection.*cannot express"):
        load(tmp_path / "s")
    write_circuit_tracer_layer(tmp_path / "s" / "layer_0.safetensors", W_skip=torch.zeros(D, D))
    assert sorted(load(tmp_path / "s")) == ["blocks.0.hook_resid_mid"]
    (tmp_path / "clt").mkdir()
    (tmp_path / "clt" / "config.yaml").write_text(yaml.safe_dump({"model_kind": "cross_layer_transcoder", **hooks}))
    with pytest.raises(SAEFormatError, match="'cross_layer_transcoder' is not supported"):
        load(tmp_path / "clt")
    state = write_circuit_tracer_layer(tmp_path / "m" / "layer_0.safetensors")
    save_file({k: v for k, v in state.items() if k != "b_dec"}, str(tmp_path / "m" / "layer_0.safetensors"))
    (tmp_path / "m" / "config.yaml").write_text(yaml.safe_dump(hooks))
    with pytest.raises(SAEFormatError, match=r"needs the tensors \['b_dec'\]"):
        load(tmp_path / "m")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.yaml").write_text(yaml.safe_dump({**hooks, "transcoders": ["hf://nobody/absent-repo/layer_0.safetensors"]}))
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache.*never downloads"):
        load(tmp_path / "hf")
    write_circuit_tracer_layer(tmp_path / "lone" / "tc.safetensors")
    with pytest.raises(SAEFormatError, match="hooks cannot be inferred.*hook_name="):
        load(tmp_path / "lone" / "tc.safetensors")
    tc = load(tmp_path / "lone" / "tc.safetensors", hook_name="blocks.2.ln2.hook_normalized", hook_name_out="blocks.2.hook_mlp_out")
    assert tc.is_transcoder and tc.cfg.architecture == "jumprelu"


# ---- all formats ----------------------------------------------------------------------------------------


def test_load_puts_dictionaries_and_sets_on_the_requested_device_and_dtype(tmp_path):
    """device= and dtype= move a loaded dictionary (and every member of a loaded set); the default is float32 on
    the CPU; an unknown folder's error lists the formats read."""
    write_sparsify(tmp_path / "run" / "layers.0")
    write_sparsify(tmp_path / "run" / "layers.1")
    assert {p.dtype for p in load(tmp_path / "run" / "layers.0").parameters()} == {torch.float32}
    saes = load(tmp_path / "run", device="meta", dtype=torch.float64)
    assert {(p.device.type, p.dtype) for s in saes.values() for p in s.parameters()} == {("meta", torch.float64)}
    (tmp_path / "nothing").mkdir()
    with pytest.raises(SAEFormatError, match="Gemma Scope params.npz.*sparsify.*circuit-tracer"):
        load(tmp_path / "nothing")
