"""Tiny random Hugging Face models of the families people study, saved to a folder for `iw.load_model(folder)`.

Each family is a `transformers` config with a few narrow layers that keeps what makes the family
different: GPT-2 (learned positions, LayerNorm), GPT-NeoX/Pythia (partial rotary, parallel attention
and MLP), Llama (grouped key/value heads, RMSNorm), Mistral (GQA, sliding window), Gemma 2 (GQA,
sandwich norms, attention and final-logit soft-capping, tied and scaled embeddings), Gemma 3 (qk-norm),
Qwen 2 (qkv bias) and Qwen 3 (qk-norm). The vocabulary is the teaching tokenizer's, saved beside the
weights, so prompts and tasks built for the teaching model run on every family. Nothing is downloaded.

    folder = save_random_family("llama", tmp_path)
    model = iw.load_model(str(folder))
"""

from __future__ import annotations

from pathlib import Path

import torch

FAMILIES = ("gpt2", "pythia", "llama", "mistral", "gemma2", "gemma3", "qwen2", "qwen3")
GPT2_SMALL = "gpt2-small"
"""Not in the matrix: `GPT2Config()` as it is (12 layers, d_model 768, 12 heads, 50,257 tokens), for benchmarks."""


def family_config(family: str, vocab_size: int, bos: int, eos: int, **overrides):
    """The `transformers` config of a tiny random model of `family` (3 layers, d_model 64-96, context 256)."""
    import transformers as tf

    ids = dict(vocab_size=vocab_size, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)
    llama_like = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, max_position_embeddings=256, tie_word_embeddings=False)
    if family == GPT2_SMALL:
        config = tf.GPT2Config(bos_token_id=bos, eos_token_id=eos)
    elif family == "gpt2":
        config = tf.GPT2Config(n_layer=3, n_head=4, n_embd=64, n_positions=256, **ids)
    elif family == "pythia":
        config = tf.GPTNeoXConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                                  rotary_pct=0.25, max_position_embeddings=256, use_parallel_residual=True, **ids)
    elif family == "llama":
        config = tf.LlamaConfig(**llama_like, **ids)
    elif family == "mistral":
        config = tf.MistralConfig(**llama_like, sliding_window=8, **ids)
    elif family == "gemma2":
        config = tf.Gemma2Config(**{**llama_like, "hidden_size": 96, "head_dim": 24, "tie_word_embeddings": True},
                                 attn_logit_softcapping=50.0, final_logit_softcapping=30.0, query_pre_attn_scalar=24,
                                 sliding_window=8, **ids)
    elif family == "gemma3":
        config = tf.Gemma3TextConfig(**{**llama_like, "hidden_size": 96, "head_dim": 24, "tie_word_embeddings": True},
                                     query_pre_attn_scalar=24, sliding_window=8, **ids)
    elif family == "qwen2":
        config = tf.Qwen2Config(**llama_like, **ids)
    elif family == "qwen3":
        config = tf.Qwen3Config(**llama_like, **ids)
    else:
        raise ValueError(f"Unknown family {family!r}; choose one of {', '.join(FAMILIES)} or {GPT2_SMALL!r}.")
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def save_random_family(family: str, folder: str | Path, seed: int = 0, tokenizer: bool = True, **overrides) -> Path:
    """Build a random model of `family` (config fields in `overrides`) and save it to `folder`, with the
    teaching tokenizer beside it unless `tokenizer=False` (a model that knows token ids only)."""
    import transformers as tf

    from interpwidgets.models.teaching import teaching_tokenizer

    folder = Path(folder)
    words = teaching_tokenizer()
    config = family_config(family, len(words), words.bos_token_id, words.eos_token_id, **overrides)
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(config)
    _spread_norms_and_biases(model, seed)
    model.save_pretrained(folder)
    if tokenizer:
        words.save_pretrained(folder)
    return folder


def _spread_norms_and_biases(model, seed: int) -> None:
    """Random models start with every norm weight at 1 (0 for Gemma's 1 + w) and every bias at 0, which hides
    bugs that drop a norm's weight or a bias; give them random values so that every parameter matters."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            is_norm = "norm" in type(module).__name__.lower()
            for name, p in module.named_parameters(recurse=False):
                if is_norm or name == "bias":
                    p.add_((0.2 if is_norm else 0.05) * torch.randn(p.shape, generator=generator))
