"""The bundled teaching model: a small GPT built with `TransformerBridge.boot_native`.

Weights live in `interpwidgets/zoo/assets/teaching/` (safetensors, trained by
`python -m interpwidgets.zoo.train`); the tokenizer folder beside them is written by
`interpwidgets.zoo.tokenizer`. `build_teaching_model` gives the same architecture with random
weights (used by training and by tests that need no trained weights).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

ASSETS = Path(__file__).resolve().parent.parent / "zoo" / "assets" / "teaching"
WEIGHTS_FILE = ASSETS / "model.safetensors"
CONFIG_FILE = ASSETS / "config.json"
TOKENIZER_DIR = ASSETS / "tokenizer"

TEACHING_CONFIG: dict = dict(
    d_model=128, n_layers=4, n_heads=4, d_head=32, d_mlp=512, n_ctx=256, act_fn="gelu",
    normalization_type="LN", positional_embedding_type="standard", default_prepend_bos=True,
)


def teaching_tokenizer():
    """The teaching tokenizer, from the bundled folder (written on first use if missing)."""
    from interpwidgets.zoo.tokenizer import load_tokenizer, save_tokenizer

    if not (TOKENIZER_DIR / "tokenizer.json").exists():
        save_tokenizer(TOKENIZER_DIR)
    return load_tokenizer(TOKENIZER_DIR)


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

    if not WEIGHTS_FILE.exists():
        raise FileNotFoundError(
            f"The bundled teaching model weights are missing ({WEIGHTS_FILE}). Reinstall interpwidgets, "
            "or train them with `python -m interpwidgets.zoo.train`."
        )
    overrides = json.loads(CONFIG_FILE.read_text())["overrides"] if CONFIG_FILE.exists() else {}
    model = build_teaching_model(seed=0, device=device, **overrides)
    state = load_file(str(WEIGHTS_FILE), device=str(model.cfg.device or "cpu"))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()
