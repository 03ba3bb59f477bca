"""dictionary_learning checkpoints and sae_lens-shaped objects load into equivalent dictionaries; unsafe files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interpwidgets.sae import SAEFormatError, load, save
from test_sae_architectures import perturbed

G = torch.Generator().manual_seed(0)
D, F = 8, 24


def rand(*shape):
    return torch.randn(*shape, generator=G)


def write_dl(folder: Path, dict_class: str, state: dict, **trainer) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "ae.pt")
    (folder / "config.json").write_text(json.dumps({"trainer": {"dict_class": dict_class, "lm_name": "tiny", "layer": 1, **trainer}}))
    return folder


def test_dictionary_learning_autoencoder_matches_its_formula(tmp_path):
    s = {"bias": rand(D), "encoder.weight": rand(F, D), "encoder.bias": rand(F), "decoder.weight": rand(D, F)}
    sae = load(write_dl(tmp_path / "ae", "AutoEncoder", s), hook_name="blocks.1.hook_resid_post")
    x = rand(5, D)
    f = torch.relu((x - s["bias"]) @ s["encoder.weight"].T + s["encoder.bias"])
    torch.testing.assert_close(sae.encode(x), f)
    torch.testing.assert_close(sae(x), f @ s["decoder.weight"].T + s["bias"])
    assert sae.cfg.hook_name == "blocks.1.hook_resid_post" and sae.cfg.model_name == "tiny"


def test_dictionary_learning_topk_and_batchtopk(tmp_path):
    base = {"encoder.weight": rand(F, D), "encoder.bias": rand(F), "decoder.weight": rand(D, F), "b_dec": rand(D),
            "k": torch.tensor(3, dtype=torch.int)}
    x = rand(6, D)
    post = torch.relu((x - base["b_dec"]) @ base["encoder.weight"].T + base["encoder.bias"])
    topk = load(write_dl(tmp_path / "t", "AutoEncoderTopK", {**base, "threshold": torch.tensor(-1.0)}, k=3))
    top = post.topk(3, dim=-1)
    torch.testing.assert_close(topk.encode(x), torch.zeros_like(post).scatter(-1, top.indices, top.values))
    batch = load(write_dl(tmp_path / "b", "BatchTopKSAE", {**base, "threshold": torch.tensor(0.7)}, k=3))
    torch.testing.assert_close(batch.encode(x), post * (post > 0.7))
    torch.testing.assert_close(batch(x), (post * (post > 0.7)) @ base["decoder.weight"].T + base["b_dec"])


def test_dictionary_learning_gated_and_jumprelu(tmp_path):
    g = {"decoder_bias": rand(D), "encoder.weight": rand(F, D), "r_mag": rand(F) * 0.1, "gate_bias": rand(F),
         "mag_bias": rand(F), "decoder.weight": rand(D, F)}
    x = rand(7, D)
    x_enc = (x - g["decoder_bias"]) @ g["encoder.weight"].T
    f = (x_enc + g["gate_bias"] > 0) * torch.relu(g["r_mag"].exp() * x_enc + g["mag_bias"])
    gated = load(write_dl(tmp_path / "g", "GatedAutoEncoder", g))
    torch.testing.assert_close(gated.encode(x), f)
    j = {"W_enc": rand(D, F), "b_enc": rand(F), "W_dec": rand(F, D), "b_dec": rand(D), "threshold": rand(F).abs()}
    jump = load(write_dl(tmp_path / "j", "JumpReluAutoEncoder", j))
    pre = x @ j["W_enc"] + j["b_enc"]  # dictionary_learning's JumpReLU does not centre the input
    torch.testing.assert_close(jump(x), torch.relu(pre * (pre > j["threshold"])) @ j["W_dec"] + j["b_dec"])


class _Marker:
    """Unpickling this would create a file: proof that arbitrary objects are never unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_pickled_objects_in_ae_pt_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "executed"
    folder = tmp_path / "evil"
    folder.mkdir()
    torch.save({"encoder.weight": rand(F, D), "payload": _Marker(marker)}, folder / "ae.pt")
    (folder / "config.json").write_text(json.dumps({"trainer": {"dict_class": "AutoEncoder"}}))
    with pytest.raises(SAEFormatError, match="never unpickles"):
        load(folder)
    assert not marker.exists()


def test_unknown_dictionary_learning_class_and_missing_tensors(tmp_path):
    with pytest.raises(SAEFormatError, match="not supported"):
        load(write_dl(tmp_path / "m", "MatryoshkaBatchTopKSAE", {"x": rand(2)}))
    with pytest.raises(SAEFormatError, match="needs 'bias'"):
        load(write_dl(tmp_path / "a", "AutoEncoder", {"encoder.weight": rand(F, D), "encoder.bias": rand(F),
                                                        "decoder.weight": rand(D, F)}))


class _FakeSaeLensConfig:
    """The parts of a sae_lens 6 config that duck typing relies on."""

    def __init__(self, d, architecture, **extra):
        self._d, self._arch = d, architecture

    def architecture(self):
        return self._arch

    def to_dict(self):
        return self._d


class _FakeSaeLensSAE(torch.nn.Module):
    def __init__(self, cfg_dict, architecture, state):
        super().__init__()
        self.cfg = _FakeSaeLensConfig(cfg_dict, architecture)
        for name, value in state.items():
            setattr(self, name, torch.nn.Parameter(value))


def test_sae_lens_object_is_accepted_by_duck_typing(tmp_path):
    ours = perturbed("jumprelu")
    save(ours, tmp_path / "j")
    cfg = json.loads((tmp_path / "j" / "cfg.json").read_text())
    cfg.pop("architecture")
    cfg["metadata"].pop("interpwidgets")
    state = {k: v.detach().clone() for k, v in ours.state_dict().items()}
    obj = _FakeSaeLensSAE(cfg, "jumprelu", state)
    converted = load(obj)
    x = torch.randn(4, 8)
    torch.testing.assert_close(converted(x), ours(x))
    assert converted.cfg.hook_name == ours.cfg.hook_name and converted.cfg.architecture == "jumprelu"


def test_gated_sae_lens_object_maps_b_gate(tmp_path):
    ours = perturbed("gated")
    save(ours, tmp_path / "g")
    cfg = json.loads((tmp_path / "g" / "cfg.json").read_text())
    cfg["metadata"].pop("interpwidgets")
    state = {("b_gate" if k == "b_enc" else k): v.detach().clone() for k, v in ours.state_dict().items()}
    converted = load(_FakeSaeLensSAE(cfg, "gated", state))
    x = torch.randn(4, 8)
    torch.testing.assert_close(converted(x), ours(x))


def test_objects_that_are_not_saes_are_refused():
    with pytest.raises(TypeError, match="Cannot load an SAE"):
        load(object())
