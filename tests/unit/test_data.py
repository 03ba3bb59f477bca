"""The teaching data (`interpwidgets.data`): held-out data is really held out, and fair; training batches are
reproducible."""

from __future__ import annotations

import random

import torch

from interpwidgets.data import corpus, vocab
from interpwidgets.data.mixture import training_batch
from interpwidgets.data.tokenizer import vocabulary
from interpwidgets.models.teaching import teaching_tokenizer


def _training_token_ids(n_docs: int = 6000) -> set[int]:
    tok = teaching_tokenizer()
    rng = random.Random(11)
    docs = [corpus.random_document(rng) for _ in range(n_docs)]
    return {i for ids in tok(docs, add_special_tokens=False)["input_ids"] for i in ids}


def test_committed_tokenizer_matches_the_vocabulary_definition():
    """The bundled tokenizer.json holds exactly vocabulary() in id order (the model's token ids)."""
    tok = teaching_tokenizer()
    assert [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])] == vocabulary()


def test_held_out_names_never_appear_in_ioi_training_sentences_but_appear_in_training_text():
    """IOI training draws only training names; held-out names still get trained embeddings from other text."""
    rng = random.Random(0)
    held_out = set(vocab.HELD_OUT_NAMES)
    for _ in range(2000):
        s = corpus.ioi_sentence(rng, "train")
        assert not {s.io, s.s, s.fields["A"], s.fields["B"]} & held_out
    tok = teaching_tokenizer()
    seen = _training_token_ids()
    assert all(tok.convert_tokens_to_ids("Ġ" + name) in seen for name in vocab.HELD_OUT_NAMES)


def test_held_out_templates_are_new_frames_of_trained_tokens():
    """Held-out templates are not training templates, open with no name, and use only tokens training text has."""
    assert not set(vocab.HELD_OUT_TEMPLATES) & set(vocab.TRAIN_TEMPLATES)
    assert not any(t.startswith("{") for t in vocab.HELD_OUT_TEMPLATES)
    tok = teaching_tokenizer()
    seen = _training_token_ids()
    rng = random.Random(1)
    for template in vocab.HELD_OUT_TEMPLATES:
        sentence = corpus.ioi_sentence(rng, "held_out", template)
        unseen = [tok.convert_ids_to_tokens(i) for i in tok.encode(sentence.text, add_special_tokens=False) if i not in seen]
        assert not unseen, f"{template!r} uses tokens no training text has: {unseen}"


def test_training_batches_are_a_function_of_seed_and_step():
    """Batch (seed, step) is reproducible, so a run resumed from a checkpoint sees the same data."""
    tok = teaching_tokenizer()
    a = training_batch(tok, seed=0, step=17, batch=4, seq_len=64)
    assert torch.equal(a, training_batch(tok, seed=0, step=17, batch=4, seq_len=64))
    assert not torch.equal(a, training_batch(tok, seed=0, step=18, batch=4, seq_len=64))
    assert (a[:, 0] == tok.bos_token_id).all() and a.shape == (4, 64)


def test_any_text_tokenizes_without_unk_and_decodes_back_to_itself():
    """Words outside the vocabulary, accents, other scripts, emoji and control characters: every string is spelled
    with the tokenizer's 256 byte-level tokens where it has no word for it, and decodes to exactly the same string."""
    tok = teaching_tokenizer()
    assert tok.unk_token is None
    texts = ["Quantum chromodynamics xyzzy", "naïve café, São Paulo", "Привет, мир", "日本語 😀", "tab\tand\nnewline",
             " two  spaces ", "When Mary and John went to the store, John gave a drink to"]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    assert tok.convert_ids_to_tokens(tok(" xyzzy", add_special_tokens=False)["input_ids"]) == ["\u0120", "x", "y", "z", "z", "y"]


def test_training_documents_decode_back_to_themselves():
    tok = teaching_tokenizer()
    rng = random.Random(3)
    docs = [corpus.random_document(rng) for _ in range(3000)]
    assert all(tok.decode(ids) == doc for ids, doc in zip(tok(docs, add_special_tokens=False)["input_ids"], docs))
