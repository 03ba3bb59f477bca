"""The bundled teaching model: a small GPT built with `TransformerBridge.boot_native`.

Weights live in `interpwidgets/assets/teaching/` (safetensors, trained by `scripts/release/train_model.py`;
paths in `interpwidgets.models.assets`); the tokenizer folder beside them is written by
`interpwidgets.data.tokenizer`. `build_teaching_model` gives the same architecture with random
weights (used by training and by tests that need no trained weights).
"""

from __future__ import annotations

import json

import torch

from interpwidgets.data.tokenizer import load_tokenizer, save_tokenizer
from interpwidgets.models.assets import TEACHING_CONFIG_FILE, TEACHING_TOKENIZER_DIR, TEACHING_WEIGHTS_FILE

TEACHING_CONFIG: dict = dict(
    d_model=128, n_layers=4, n_heads=4, d_head=32, d_mlp=512, n_ctx=256, act_fn="gelu",
    normalization_type="LN", positional_embedding_type="standard", default_prepend_bos=True,
)


def teaching_tokenizer():
    """The teaching tokenizer, from the bundled folder (written on first use if missing)."""
    if not (TEACHING_TOKENIZER_DIR / "tokenizer.json").exists():
        save_tokenizer(TEACHING_TOKENIZER_DIR)
    return load_tokenizer(TEACHING_TOKENIZER_DIR)


def build_teaching_model(
    seed: int = 0, device: str | torch.device | None = None, **overrides
):
    """The teaching architecture with random weights (`overrides` change config fields, e.g. `attn_only=True`)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    tokenizer = teaching_tokenizer()
    config = {**TEACHING_CONFIG, "d_vocab": len(tokenizer), "seed": seed, **overrides}
    model = TransformerBridge.boot_native(
        TransformerBridgeConfig(**config), tokenizer=tokenizer, device=device, model_name="interpwidgets-teaching"
    )
    return model.eval()


def load_teaching_model(device: str | torch.device | None = None):
    """The trained teaching model in eval mode; raises if the bundled weights are missing."""
    from safetensors.torch import load_file

    if not TEACHING_WEIGHTS_FILE.exists():
        raise FileNotFoundError(
            f"The bundled teaching model weights are missing ({TEACHING_WEIGHTS_FILE}). Reinstall interpwidgets, "
            "or train them from a source checkout with `python scripts/release/train_model.py`."
        )
    overrides = json.loads(TEACHING_CONFIG_FILE.read_text())["overrides"] if TEACHING_CONFIG_FILE.exists() else {}
    model = build_teaching_model(seed=0, device=device, **overrides)
    state = load_file(str(TEACHING_WEIGHTS_FILE), device=str(model.cfg.device or "cpu"))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()
