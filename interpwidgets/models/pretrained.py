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


def load_pretrained(name: str, device: str | torch.device, dtype: torch.dtype = torch.float32) -> object:
    """A TransformerBridge for `name` (TransformerLens name, alias, or a local model folder), in eval mode."""
    from transformer_lens.model_bridge import TransformerBridge

    folder = Path(name) if Path(name).is_dir() else None
    if folder is not None:
        if not folder_has_tokenizer(folder):
            return _boot_without_tokenizer(str(folder), device, dtype).eval()
        source, tokenizer = str(folder), folder_tokenizer(folder)
    else:
        source, tokenizer = resolve_name(name), None
        if not is_cached(source):
            raise FileNotFoundError(
                f"The weights of {name!r} ({source}) are not in the local Hugging Face cache and this machine "
                f"loads models offline. On a machine with network run `huggingface-cli download {source}` (or "
                f"`python -c \"import transformers as t; t.AutoModelForCausalLM.from_pretrained('{source}')\"`) "
                "and copy the cache over, or pass the path of a folder saved with `save_pretrained`."
            )
    model = TransformerBridge.boot_transformers(source, device=device, dtype=dtype, tokenizer=tokenizer)
    return model.eval()


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def folder_has_tokenizer(folder: Path) -> bool:
    return any((folder / f).exists() for f in TOKENIZER_FILES)


def _boot_without_tokenizer(folder: str, device, dtype: torch.dtype):
    """A bridge over a saved model that has no tokenizer: it takes token ids only (`model.tokenizer` is None)."""
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
    from transformers import AutoModelForCausalLM

    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)
    architecture = (hf_model.config.architectures or [type(hf_model).__name__])[0]
    return build_bridge_from_module(hf_model, architecture, hf_config=hf_model.config, model_name=folder)


def folder_tokenizer(folder: Path):
    """The tokenizer saved in `folder` exactly as its `tokenizer.json` defines it, or None to let
    TransformerLens choose. (`AutoTokenizer` swaps in the model type's own tokenizer class for some
    families, e.g. Qwen 2, which rebuilds a different tokenizer from the same files.)"""
    if not (folder / "tokenizer.json").exists():
        return None
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(folder), add_bos_token=True)  # kept as is by TransformerLens
