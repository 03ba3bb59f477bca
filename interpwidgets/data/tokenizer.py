"""Tokenizer of the teaching model: whole words with GPT-2-style leading-space tokens, and a byte fallback.

Pre-tokenisation is GPT-2's byte-level split, so " Mary" is one token ("ĠMary") and "Mary" at the start of a
text another. A piece that is not a word of the corpus is spelled out with the 256 byte tokens (longest known
prefix first, as WordPiece matches), so every string tokenizes and decodes back to itself: there is no unknown
token. Special token `<|endoftext|>` serves as BOS, EOS and padding, as in GPT-2.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from interpwidgets.data import vocab

BOS = "<|endoftext|>"


@cache
def byte_tokens() -> tuple[str, ...]:
    """The 256 byte-level characters (GPT-2's byte-to-unicode map) that are not already a word token."""
    from tokenizers.pre_tokenizers import ByteLevel

    words = set(word_tokens())
    return tuple(sorted(set(ByteLevel.alphabet()) - words))


def word_tokens() -> list[str]:
    """Each corpus word with and without its leading space, in a stable order."""
    return [form for word in vocab.all_words() for form in ("Ġ" + word, word)]


def vocabulary() -> list[str]:
    """Token strings in id order: BOS, the word tokens, then the byte-fallback tokens."""
    return [BOS, *word_tokens(), *byte_tokens()]


def build_tokenizer():
    """A `transformers.PreTrainedTokenizerFast` over `vocabulary()` (built in memory)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    ids = {token: i for i, token in enumerate(vocabulary())}
    # every byte is a token, so WordPiece never needs its unknown token; no prefix marks a continued piece
    pieces = models.WordPiece(vocab=ids, unk_token=BOS, continuing_subword_prefix="", max_input_chars_per_word=1 << 30)
    core = Tokenizer(pieces)
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=BOS, pad_token=BOS, model_max_length=1024,
    )


def fallback_ids(tokenizer) -> frozenset[int]:
    """Ids of the byte-fallback tokens if `tokenizer` is the teaching tokenizer (text outside its corpus's words
    is spelled with them), else the empty set."""
    cached = getattr(tokenizer, "_byte_fallback_ids", None)
    if cached is None:
        tokens = vocabulary()
        same = len(tokenizer) == len(tokens) and tokenizer.convert_ids_to_tokens(list(range(len(tokens)))) == tokens
        first = len(tokens) - len(byte_tokens())
        cached = frozenset(range(first, len(tokens))) if same else frozenset()
        try:
            tokenizer._byte_fallback_ids = cached
        except AttributeError:
            pass
    return cached


def save_tokenizer(folder: str | Path) -> Path:
    folder = Path(folder)
    build_tokenizer().save_pretrained(folder)
    return folder


def load_tokenizer(folder: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))
