"""Word-level tokenizer of the teaching model, with GPT-2-style leading-space tokens.

Pre-tokenisation is GPT-2's byte-level split, so " Mary" is one token ("ĠMary") and "Mary" at the
start of a text another. Special token `<|endoftext|>` serves as BOS, EOS and padding, as in GPT-2.
"""

from __future__ import annotations

from pathlib import Path

from interpwidgets.data import vocab

BOS = "<|endoftext|>"
UNK = "<unk>"


def vocabulary() -> list[str]:
    """Token strings in id order: specials, then each word with and without its leading space."""
    tokens = list(vocab.SPECIAL_TOKENS)
    for word in vocab.all_words():
        tokens += ["Ġ" + word, word]
    return tokens


def build_tokenizer():
    """A `transformers.PreTrainedTokenizerFast` over `vocabulary()` (built in memory)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    ids = {token: i for i, token in enumerate(vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=ids, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=BOS, pad_token=BOS, unk_token=UNK,
        model_max_length=1024,
    )


def save_tokenizer(folder: str | Path) -> Path:
    folder = Path(folder)
    build_tokenizer().save_pretrained(folder)
    return folder


def load_tokenizer(folder: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))
