"""Model loading: the bundled teaching model, pretrained models from a local folder, and clear errors."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.data.tokenizer import load_tokenizer
from interpwidgets.models.assets import TEACHING_TOKENIZER_DIR


def test_teaching_model_loads_offline_in_eval_mode():
    """iw.load_model() returns the bundled model in eval mode, on the requested device (no timing assert: load time
    is a benchmark figure, not a test)."""
    model = iw.load_model(device="cpu")
    assert not model.training and next(model.parameters()).device.type == "cpu"
    logits = model(model.to_tokens("When Mary and John went to the store, John gave a drink to"))
    assert logits.shape[-1] == model.cfg.d_vocab and torch.isfinite(logits).all()


def test_bridge_logits_equal_the_native_module(random_model):
    """The TransformerBridge wrapper computes exactly the native module's logits (training uses the module)."""
    tokens = random_model.to_tokens(["Mary saw the cat .", "John ran near the park !"])
    torch.testing.assert_close(random_model(tokens), random_model.original_model(tokens), rtol=0, atol=0)


def test_pretrained_gpt2_loads_from_a_local_folder(tmp_path):
    """A tiny random GPT-2 saved by transformers loads through TransformerBridge with identical logits."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = load_tokenizer(TEACHING_TOKENIZER_DIR)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=len(tokenizer),
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(config).eval()
    hf.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model = iw.load_model(str(tmp_path), device="cpu")
    assert not model.training and model.cfg.n_layers == 2
    tokens = model.to_tokens("Mary gave a drink to John")
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), hf(tokens).logits, atol=1e-4, rtol=1e-4)
    _, cache = model.run_with_cache(tokens)
    assert cache["blocks.1.attn.hook_z"].shape[2] == 2  # TransformerLens hook names work


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ValueError, match="Unknown model name 'gtp2'.*Did you mean 'gpt2'"):
        iw.load_model("gtp2")


def test_known_but_uncached_model_names_how_to_get_it(monkeypatch):
    monkeypatch.setattr("interpwidgets.models.pretrained.is_cached", lambda repo: False)
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache.*huggingface-cli download gpt2"):
        iw.load_model("gpt2")


def test_model_name_of_wrong_type_is_rejected():
    with pytest.raises(TypeError, match="name must be a model name string"):
        iw.load_model(42)
