"""SAELens-format save/load: faithful round trips, SAELens's field layout, and clear errors on bad files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from interpwidgets.sae import ARCHITECTURES, SAEFormatError, load, save
from test_sae_architectures import perturbed


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("transcoder", [False, True])
def test_round_trip_reproduces_features_and_reconstruction(tmp_path, architecture, transcoder):
    sae = perturbed(architecture, transcoder)
    save(sae, tmp_path / "sae")
    back = load(tmp_path / "sae")
    x = torch.randn(10, 8)
    assert back.cfg == sae.cfg
    assert torch.equal(back.encode(x), sae.encode(x)) and torch.equal(back(x), sae(x))


def test_saved_files_use_saelens_names_shapes_and_config_fields(tmp_path):
    save(perturbed("jumprelu"), tmp_path / "j")
    weights = load_file(str(tmp_path / "j" / "sae_weights.safetensors"))
    assert {k: tuple(v.shape) for k, v in weights.items()} == {
        "W_enc": (8, 32), "W_dec": (32, 8), "b_enc": (32,), "b_dec": (8,), "threshold": (32,)}
    cfg = json.loads((tmp_path / "j" / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu" and cfg["d_in"] == 8 and cfg["d_sae"] == 32
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_post"
    save(perturbed("gated"), tmp_path / "g")
    assert {"b_gate", "r_mag", "b_mag"} <= set(load_file(str(tmp_path / "g" / "sae_weights.safetensors")))
    save(perturbed("relu", transcoder=True), tmp_path / "t")
    cfg = json.loads((tmp_path / "t" / "cfg.json").read_text())
    assert cfg["architecture"] == "transcoder" and cfg["d_out"] == 6 and cfg["apply_b_dec_to_input"] is False
    assert cfg["metadata"]["hook_name_out"] == "blocks.0.hook_mlp_out"


def test_float16_storage_loads_as_float32_close_to_original(tmp_path):
    sae = perturbed("topk")
    save(sae, tmp_path / "h", storage_dtype=torch.float16)
    back = load(tmp_path / "h")
    assert back.W_enc.dtype == torch.float32
    torch.testing.assert_close(back.W_dec, sae.W_dec, atol=1e-3, rtol=1e-3)


def test_loads_a_folder_written_the_way_sae_lens_5_wrote_topk(tmp_path):
    """Pre-6 SAELens: hook_point at top level, TopK stored as activation_fn_str='topk' with kwargs."""
    folder = tmp_path / "old"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    state = {"W_enc": torch.randn(8, 32, generator=g), "W_dec": torch.randn(32, 8, generator=g),
             "b_enc": torch.randn(32, generator=g), "b_dec": torch.randn(8, generator=g)}
    save_file(state, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({
        "d_in": 8, "d_sae": 32, "hook_point": "blocks.1.hook_resid_pre", "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 5}, "apply_b_dec_to_input": True, "dtype": "float32"}))
    sae = load(folder)
    assert sae.cfg.architecture == "topk" and sae.cfg.k == 5 and sae.cfg.hook_name == "blocks.1.hook_resid_pre"
    x = torch.randn(3, 8)
    pre = (x - state["b_dec"]) @ state["W_enc"] + state["b_enc"]
    top = pre.topk(5, dim=-1)
    expected = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu()) @ state["W_dec"] + state["b_dec"]
    torch.testing.assert_close(sae(x), expected)


def test_saelens_topk_rescaled_by_decoder_norm_is_folded_exactly(tmp_path):
    sae = perturbed("topk")
    save(sae, tmp_path / "r")
    cfg = json.loads((tmp_path / "r" / "cfg.json").read_text())
    cfg["rescale_acts_by_decoder_norm"] = True
    (tmp_path / "r" / "cfg.json").write_text(json.dumps(cfg))
    back = load(tmp_path / "r")
    x = torch.randn(6, 8)
    norms = sae.W_dec.norm(dim=-1)
    pre = sae.encode_pre(x) * norms
    top = pre.topk(4, dim=-1)
    f = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
    torch.testing.assert_close(back(x), (f / norms) @ sae.W_dec + sae.b_dec)


def test_corrupt_weights_raise_a_format_error(tmp_path):
    save(perturbed("relu"), tmp_path / "c")
    (tmp_path / "c" / "sae_weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SAEFormatError, match="corrupt"):
        load(tmp_path / "c")


def test_corrupt_config_raises_a_format_error(tmp_path):
    save(perturbed("relu"), tmp_path / "c")
    (tmp_path / "c" / "cfg.json").write_text("{ truncated")
    with pytest.raises(SAEFormatError, match="not valid JSON"):
        load(tmp_path / "c")


def test_weights_that_disagree_with_the_config_name_the_mismatch(tmp_path):
    save(perturbed("relu"), tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "cfg.json").read_text())
    cfg["d_sae"] = 64
    (tmp_path / "m" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAEFormatError, match=r"W_enc has shape \(8, 32\), expected \(8, 64\)"):
        load(tmp_path / "m")


def test_nan_weights_are_refused(tmp_path):
    sae = perturbed("relu")
    with torch.no_grad():
        sae.W_enc[0, 0] = float("nan")
    save(sae, tmp_path / "n")
    with pytest.raises(SAEFormatError, match="NaN"):
        load(tmp_path / "n")


def test_unknown_architecture_and_foreign_folder_are_refused(tmp_path):
    save(perturbed("relu"), tmp_path / "u")
    cfg = json.loads((tmp_path / "u" / "cfg.json").read_text())
    cfg["architecture"] = "matryoshka_batchtopk"
    cfg["metadata"].pop("interpwidgets")
    (tmp_path / "u" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAEFormatError, match="not supported"):
        load(tmp_path / "u")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SAEFormatError, match="neither"):
        load(tmp_path / "empty")


def test_saving_onto_a_file_refuses_and_leaves_it_untouched(tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    with pytest.raises(FileExistsError):
        save(perturbed("relu"), target)
    assert target.read_text() == "keep me"
