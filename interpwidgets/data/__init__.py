"""The teaching model's data: word lists (`vocab`), the generated corpus (`corpus`), its tokenizer
(`tokenizer`) and the training mixture's token batches (`mixture`).

A leaf package: it imports nothing from interpwidgets outside itself.
"""

from interpwidgets.data import corpus, mixture, tokenizer, vocab

__all__ = ["corpus", "mixture", "tokenizer", "vocab"]
