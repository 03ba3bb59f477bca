"""The dictionaries shipped for the bundled teaching model (trained by `scripts/release/train_saes.py`)."""

from __future__ import annotations

import torch

from interpwidgets.models.assets import TEACHING_SAES_DIR
from interpwidgets.sae.formats import CFG_FILE, load_saelens
from interpwidgets.sae.labels import attach_labels
from interpwidgets.sae.sets import SAESet

TEACHING_MODEL_NAME = "interpwidgets-teaching"


def asset_folder_name(hook_name: str) -> str:
    """Folder name for a dictionary reading `hook_name` ("blocks.0.ln2.hook_normalized" -> "blocks_0_ln2_hook_normalized")."""
    return hook_name.replace(".", "_")


def pretrained(model=None, device: str | torch.device | None = None) -> SAESet:
    """The shipped SAEs and transcoders for the teaching model, as an `SAESet`.

    Per layer L of the 4: residual SAEs ("blocks.L.hook_resid_post"), attention-output SAEs
    ("blocks.L.hook_attn_out"), MLP-output SAEs ("blocks.L.hook_mlp_out") and MLP transcoders
    ("blocks.L.ln2.hook_normalized" -> "blocks.L.hook_mlp_out"). With `model`, checks that it is the
    teaching model and puts the dictionaries on its device (else on `device`, default CPU). Each one's
    `sae.labels` come from the labels.json beside it (made by `scripts/release/label_saes.py`).
    """
    folders = sorted(p for p in TEACHING_SAES_DIR.glob("*") if (p / CFG_FILE).is_file()) if TEACHING_SAES_DIR.is_dir() else []
    if not folders:
        raise FileNotFoundError(
            f"No bundled SAEs found in {TEACHING_SAES_DIR}. Reinstall interpwidgets, or train them from a source "
            "checkout with `python scripts/release/train_saes.py`."
        )
    if model is not None:
        name = getattr(model.cfg, "model_name", None)
        if name != TEACHING_MODEL_NAME:
            raise ValueError(
                f"The bundled SAEs were trained on the teaching model ({TEACHING_MODEL_NAME!r}), not {name!r}; "
                "load SAEs for other models with iw.sae.load(path)."
            )
        device = device or model.cfg.device
    saes = SAESet.of(_loaded(folder) for folder in folders)
    return saes.to(torch.device(device or "cpu"))


def _loaded(folder):
    sae = load_saelens(folder)
    sae.source = str(folder)  # shown by the SAE's card; not saved with it
    attach_labels(sae, folder)
    return sae
