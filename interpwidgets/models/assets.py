"""Where the bundled files live: the one module that names paths inside `interpwidgets/assets/`.

    teaching/                  the teaching model
      model.safetensors        weights (TransformerLens parameter names), written by scripts/release/train_model.py
      config.json              architecture overrides and training settings, written with the weights
      train_log.jsonl          held-out scores during training (plotted by scripts/release/plot_training.py)
      tokenizer/               the `transformers` tokenizer folder, written by `interpwidgets.data.tokenizer`
      saes/                    the bundled SAEs and transcoders (SAELens folders), written by
                               scripts/release/train_saes.py with its evaluation.json, training_log.json, README.md
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"

TEACHING_DIR = ASSETS_DIR / "teaching"
TEACHING_WEIGHTS_FILE = TEACHING_DIR / "model.safetensors"
TEACHING_CONFIG_FILE = TEACHING_DIR / "config.json"
TEACHING_TRAIN_LOG_FILE = TEACHING_DIR / "train_log.jsonl"
TEACHING_TOKENIZER_DIR = TEACHING_DIR / "tokenizer"

TEACHING_SAES_DIR = TEACHING_DIR / "saes"
TEACHING_SAES_EVALUATION_FILE = TEACHING_SAES_DIR / "evaluation.json"
