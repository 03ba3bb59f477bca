"""The bundled dictionaries: all sixteen load, fit the teaching model, stay within the asset budget, and work."""

from __future__ import annotations

import json

import pytest
import torch

from interpwidgets.models.assets import TEACHING_DIR, TEACHING_SAES_DIR, TEACHING_SAES_EVALUATION_FILE
from interpwidgets.sae import evaluate, pretrained, spliced

ASSET_BUDGET_BYTES = 60 * 2**20


@pytest.fixture(scope="module")
def saes(teaching_model):
    return pretrained(teaching_model)


def test_every_layer_has_all_four_kinds(saes):
    assert len(saes) == 16
    for kind in ("resid", "attn", "mlp", "transcoders"):
        assert [int(s.cfg.hook_name.split(".")[1]) for s in getattr(saes, kind)] == [0, 1, 2, 3]
    for layer, tc in enumerate(saes.transcoders):
        assert tc.cfg.hook_name == f"blocks.{layer}.ln2.hook_normalized" and tc.cfg.hook_name_out == f"blocks.{layer}.hook_mlp_out"


def test_stored_in_saelens_format_as_float16(saes):
    for folder in TEACHING_SAES_DIR.iterdir():
        if folder.is_dir():
            cfg = json.loads((folder / "cfg.json").read_text())
            assert cfg["architecture"] in ("jumprelu", "jumprelu_transcoder")
            from safetensors import safe_open

            with safe_open(str(folder / "sae_weights.safetensors"), "pt") as f:
                assert f.get_slice("W_enc").get_dtype() == "F16"


def test_assets_fit_the_budget():
    total = sum(p.stat().st_size for p in TEACHING_DIR.rglob("*") if p.is_file())
    assert total <= ASSET_BUDGET_BYTES, f"teaching assets take {total / 2**20:.1f} MB"


def test_evaluation_table_meets_the_targets_the_readme_claims():
    """The bundle's own evaluation (written by the training script): residual CE loss recovered >= 0.90 at
    L0 <= 50, transcoder explained variance >= 0.85 and dead fraction <= 5% for every dictionary."""
    table = json.loads(TEACHING_SAES_EVALUATION_FILE.read_text())
    assert all(table["checks"].values()), table["checks"]
    for row in table["rows"]:
        assert row["dead_fraction"] <= 0.05 and row["l0"] <= 50, row
        if row["kind"] == "resid":
            assert row["ce_loss_recovered"] >= 0.90, row


def test_a_residual_sae_reconstructs_fresh_text(teaching_model, saes):
    stats = evaluate(teaching_model, saes["blocks.1.hook_resid_post"], n_batches=1, batch_size=8)
    assert stats["explained_variance"] > 0.8 and stats["ce_loss_recovered"] > 0.8 and stats["l0"] <= 50


def test_splicing_all_residual_saes_and_transcoders_with_error_terms_is_exact(teaching_model, saes):
    tokens = teaching_model.to_tokens("When Mary and John went to the store, John gave a drink to")
    clean = teaching_model(tokens)
    with spliced(teaching_model, saes.resid + saes.transcoders):
        logits = teaching_model(tokens)
    torch.testing.assert_close(logits, clean, rtol=1e-4, atol=1e-4)


def test_other_models_are_refused(saes):
    class Other:
        class cfg:
            model_name = "gpt2"
    with pytest.raises(ValueError, match="trained on the teaching model"):
        pretrained(Other())
