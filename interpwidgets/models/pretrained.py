"""Load pretrained models through TransformerLens's `TransformerBridge`, offline from the local cache."""

from __future__ import annotations

import difflib
from pathlib import Path

import torch


def resolve_name(name: str) -> str:
    """The official Hugging Face name of a TransformerLens model name or alias, or a ValueError with suggestions."""
    from transformer_lens.supported_models import OFFICIAL_MODEL_NAMES, _model_alias_map

    aliases = _model_alias_map()
    if name.lower() in aliases:
        return aliases[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(aliases), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(aliases[c]) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown model name {name!r}: it is neither a TransformerLens model name ({len(OFFICIAL_MODEL_NAMES)} "
        f"known, e.g. 'gpt2', 'pythia-70m') nor a local folder with a saved model.{hint} Call iw.load_model() "
        "with no name for the bundled teaching model."
    )


def is_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def load_pretrained(name: str, device: str | torch.device) -> object:
    """A TransformerBridge for `name` (TransformerLens name, alias, or a local model folder), in eval mode."""
    from transformer_lens.model_bridge import TransformerBridge

    if Path(name).is_dir():
        source = str(name)
    else:
        source = resolve_name(name)
        if not is_cached(source):
            raise FileNotFoundError(
                f"The weights of {name!r} ({source}) are not in the local Hugging Face cache and this machine "
                f"loads models offline. On a machine with network run `huggingface-cli download {source}` (or "
                f"`python -c \"import transformers as t; t.AutoModelForCausalLM.from_pretrained('{source}')\"`) "
                "and copy the cache over, or pass the path of a folder saved with `save_pretrained`."
            )
    model = TransformerBridge.boot_transformers(source, device=device)
    return model.eval()
