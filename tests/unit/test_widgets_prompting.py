"""The prompt box: one validation for every prompt a view takes (empty or too long: refused with a message; words
outside the vocabulary, spelled byte by byte: accepted with a warning naming them, which says when most of the prompt
is outside the training distribution), and the `prompt {text}` request of
AttentionPatterns, LogitLens, TokenFeatures and Steering, which shows the new prompt's result (checked against a
cache, the model's own logits, the SAE's own encoding and a hand-written decoding loop), updates the traits, records
code that reproduces it, and refuses a bad prompt leaving the view as it was; the Explorer's one box re-prompts its
token and attention views together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interpwidgets as iw
from interpwidgets.widgets import AttentionPatterns, Explorer, LogitLens, Steering, TokenFeatures
from interpwidgets.widgets.prompting import MAX_PROMPT_CHARS, check_prompt
from interpwidgets.widgets.testing import ask, decode_array, decode_int32

PROMPT = "When Mary and John went to the store, John gave a drink to"
NEW = "When John and Mary went to the park, Mary gave a book to"
ONE_NEW_WORD = "When Mary and John went to the xyzzy, John gave a drink to"
# the teaching tokenizer spells a word outside its vocabulary byte by byte, a space of its own first:
# " xyzzy" -> " ", "x", "y", "z", "z", "y": 6 of the 19 tokens after the BOS (counted by hand)
ONE_NEW_WORD_WARNING = "6 of 19 tokens spell words outside the model's vocabulary, byte by byte: 'xyzzy'"


# ---- the one validation
@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_an_empty_prompt_is_refused(teaching_model, text):
    with pytest.raises(ValueError, match="the prompt is empty: type some text"):
        check_prompt(teaching_model, text)


def test_a_prompt_longer_than_the_context_names_the_limit_and_its_length(teaching_model):
    text = " Mary went" * 200
    n = teaching_model.to_tokens(text, truncate=False).shape[1]
    assert n > teaching_model.cfg.n_ctx
    with pytest.raises(ValueError, match=rf"has {n} tokens; the model reads 1 to {teaching_model.cfg.n_ctx}"):
        check_prompt(teaching_model, text)


def test_no_word_becomes_unk_the_prompt_is_spelled_byte_by_byte(teaching_model):
    """Words outside the vocabulary keep their letters (the model sees x, y, z, z, y), so the prompt round-trips."""
    strings = teaching_model.to_str_tokens(ONE_NEW_WORD)
    assert strings[8:14] == [" ", "x", "y", "z", "z", "y"] and "<unk>" not in strings
    assert "".join(strings[1:]) == ONE_NEW_WORD


def test_a_mostly_spelled_prompt_is_accepted_but_warned_as_outside_the_training_distribution(teaching_model):
    """5 + 8 + 16 spelled tokens ("xyzzy", " Quantum", " flibbertigibbet") and " Mary", counted by hand: 30 tokens, of
    which 28 are bytes (the "a" of "Quantum" is the vocabulary's word "a", not a byte, and " Mary" is a word)."""
    checked = check_prompt(teaching_model, "xyzzy Quantum flibbertigibbet Mary")
    assert checked.warning == ("most of the prompt is outside the model's training distribution: 28 of 30 tokens spell "
                               "words outside the model's vocabulary, byte by byte: 'xyzzy', 'Quantum', 'flibbertigibbet'")


def test_a_few_spelled_words_are_accepted_with_a_warning_naming_them(teaching_model):
    checked = check_prompt(teaching_model, ONE_NEW_WORD)
    assert checked.warning == ONE_NEW_WORD_WARNING
    assert checked.tokens[0].tolist() == teaching_model.to_tokens(ONE_NEW_WORD)[0].tolist()
    assert check_prompt(teaching_model, PROMPT).warning == ""


# ---- AttentionPatterns
def test_attention_patterns_refuses_an_empty_prompt_at_construction(teaching_model):
    """Before: "" drew a one-token widget of solid squares (the BOS alone)."""
    for text in ("", "  "):
        with pytest.raises(ValueError, match="the prompt is empty: type some text"):
            AttentionPatterns(teaching_model, text)


def test_attention_patterns_shows_the_unknown_token_warning(teaching_model):
    widget = AttentionPatterns(teaching_model, ONE_NEW_WORD)
    assert widget.prompt_warning == ONE_NEW_WORD_WARNING
    assert AttentionPatterns(teaching_model, PROMPT).prompt_warning == ""


def test_the_prompt_request_shows_the_new_prompts_patterns(random_model):
    widget = AttentionPatterns(random_model, PROMPT, layer=2, head=1)
    assert widget.prompt_box and widget.prompt_text == PROMPT and widget.prompt_version == 0
    ok, reply = ask(widget, "prompt", text=NEW)
    assert ok, reply
    assert widget.tokens == reply["tokens"] == random_model.to_str_tokens(NEW)
    assert (widget.prompt_text, widget.prompt_version, widget.prompt_warning) == (NEW, 1, "")
    ok, shown = ask(widget, "pattern")
    with torch.no_grad():
        _, cache = random_model.run_with_cache(random_model.to_tokens(NEW))
    expected = cache["blocks.2.attn.hook_pattern"][0, 1].numpy()
    got = np.full_like(expected, np.nan)
    got[np.tril_indices(len(widget.tokens))] = decode_array(shown["pattern"])
    np.testing.assert_allclose(np.tril(got), expected, atol=2e-3)


def test_the_prompt_code_reproduces_the_new_result(random_model):
    widget = AttentionPatterns(random_model, PROMPT)
    ok, reply = ask(widget, "prompt", text=NEW)
    assert ok, reply
    code = widget.history[-1].code
    assert code == f"result = iw.lens.attention_patterns(model, {NEW!r})" and reply["code"].endswith(code)
    namespace = {"model": random_model, "iw": iw}
    exec(code, namespace)
    torch.testing.assert_close(namespace["result"].patterns, widget.result.patterns)


@pytest.mark.parametrize(("text", "message"), [
    ("", "the prompt is empty: type some text"),
    ("word " * MAX_PROMPT_CHARS, "this view takes at most"),
    (" Mary went" * 200, "the model reads 1 to 256"),
    (42, "text must be a string"),
])
def test_a_refused_prompt_leaves_the_view_as_it_was(teaching_model, text, message):
    widget = AttentionPatterns(teaching_model, PROMPT)
    before = (list(widget.tokens), widget.prompt_text, widget.prompt_version, len(widget.history))
    ok, error = ask(widget, "prompt", text=text)
    assert not ok and message in error
    assert (list(widget.tokens), widget.prompt_text, widget.prompt_version, len(widget.history)) == before


def test_a_view_built_without_a_model_has_no_prompt_box():
    pattern = torch.tril(torch.ones(1, 3, 3))
    widget = AttentionPatterns(pattern=pattern / pattern.sum(-1, keepdim=True), tokens=["a", "b", "c"])
    assert widget.prompt_box is False
    ok, error = ask(widget, "prompt", text="a b")
    assert not ok and "built without a model" in error


def test_tiny_attention_weights_reach_the_browser_as_they_are():
    """Before: the pattern travelled as uint8 codes of [0, 1], so a weight of 3.2e-4 arrived as 0."""
    pattern = torch.tensor([[[1.0, 0.0, 0.0], [1 - 3.2e-4, 3.2e-4, 0.0], [0.5, 0.49995, 5e-5]]])
    widget = AttentionPatterns(pattern=pattern, tokens=["a", "b", "c"])
    ok, reply = ask(widget, "pattern")
    values = decode_array(reply["pattern"])  # the lower triangle, row by row
    np.testing.assert_allclose(values[[2, 5]], [3.2e-4, 5e-5], rtol=1e-3)


# ---- LogitLens
def test_the_lens_prompt_request_shows_the_new_grid_and_keeps_the_followed_token(teaching_model):
    lens = LogitLens(teaching_model, PROMPT, k=4, token=" Mary")
    mary = lens.token
    ok, reply = ask(lens, "prompt", text=NEW)
    assert ok, reply
    assert lens.tokens == teaching_model.to_str_tokens(NEW) and lens.k == 4 and lens.token == mary
    logits = teaching_model(teaching_model.to_tokens(NEW))[0].detach()  # [pos, vocab]
    final = decode_int32(lens.final["index"])
    vocab_ids = decode_int32(lens.vocab_ids)
    assert vocab_ids[final].tolist() == logits.argmax(-1).tolist()
    code = lens.history[-1].code
    assert code == f"result = iw.lens.logit_lens(model, {NEW!r}, k=4)"
    namespace = {"model": teaching_model, "iw": iw}
    exec(code, namespace)
    assert namespace["result"].tokens == lens.tokens


def test_a_lens_result_keeps_its_prompt_box_and_warns_of_unknown_tokens(teaching_model):
    lens = LogitLens(iw.lens.logit_lens(teaching_model, ONE_NEW_WORD))
    assert lens.prompt_box and lens.prompt_warning == ONE_NEW_WORD_WARNING
    with pytest.raises(ValueError, match="the prompt is empty"):
        LogitLens(teaching_model, "")


# ---- TokenFeatures, Steering and Explorer (the SAE views)
RESID0, RESID1 = "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def saes():
    make = lambda hook, seed: iw.sae.build_sae(  # noqa: E731
        iw.sae.SAEConfig(d_in=128, d_sae=32, architecture="topk", k=4, hook_name=hook), seed=seed)
    return iw.sae.SAESet.of([make(RESID0, 0), make(RESID1, 1)])


def encoded(model, sae, hook: str, text: str) -> torch.Tensor:
    """By hand: the SAE's encoding [n, d_sae] of the hook's activations on `text`."""
    with torch.no_grad():
        _, cache = model.run_with_cache(model.to_tokens(text))
        return sae.encode(cache[hook][0]).float()


def test_token_features_takes_a_new_prompt_keeping_its_dictionary_and_feature(random_model, saes):
    widget = TokenFeatures(random_model, saes, PROMPT, hook=RESID0, feature=5)
    assert widget.prompt_box and widget.prompt_text == PROMPT
    ok, reply = ask(widget, "prompt", text=NEW)
    assert ok, reply
    assert widget.tokens == reply["tokens"] == random_model.to_str_tokens(NEW)
    assert (widget.hook, widget.feature, widget.prompt_text, widget.prompt_version) == (RESID0, 5, NEW, 1)
    expected = iw.sae.feature_activations(random_model, saes, NEW)
    for hook in saes:
        torch.testing.assert_close(widget.result[hook], expected[hook])
    torch.testing.assert_close(widget.result.logits, expected.logits)
    ok, shown = ask(widget, "activations")  # what the view colours by, against the SAE's own encoding
    np.testing.assert_allclose(decode_array(shown["values"]), encoded(random_model, saes[RESID0], RESID0, NEW)[:, 5].numpy(),
                               rtol=1e-2, atol=1e-2)


def test_token_features_prompt_code_reproduces_the_new_activations(random_model, saes):
    widget = TokenFeatures(random_model, saes, PROMPT)
    ok, reply = ask(widget, "prompt", text=NEW)
    assert ok, reply
    step = widget.history[-1]
    assert step.action.startswith("prompt ") and step.shown == {"n_tokens": len(random_model.to_str_tokens(NEW))}
    assert step.code == f"result = iw.sae.feature_activations(model, saes, {NEW!r})" and reply["code"].endswith(step.code)
    namespace = {"model": random_model, "saes": saes, "iw": iw}
    exec(step.code, namespace)
    torch.testing.assert_close(namespace["result"][RESID1], widget.result[RESID1])


def test_token_features_from_a_result_still_has_a_box(random_model, saes):
    """A precomputed FeatureActivations comes with the model and SAEs, so the box works: it opens with the text."""
    widget = TokenFeatures(random_model, saes, iw.sae.feature_activations(random_model, saes, PROMPT))
    assert widget.prompt_box and widget.prompt_text == PROMPT
    ok, reply = ask(widget, "prompt", text=NEW)
    assert ok and widget.tokens == random_model.to_str_tokens(NEW)


def test_token_features_warns_of_unknown_tokens_and_refuses_an_empty_prompt(teaching_model, saes):
    assert TokenFeatures(teaching_model, saes, ONE_NEW_WORD).prompt_warning == ONE_NEW_WORD_WARNING
    with pytest.raises(ValueError, match="the prompt is empty: type some text"):
        TokenFeatures(teaching_model, saes, " ")


def greedy_ids(model, text: str, n_new: int) -> list[int]:
    """By hand: greedy decoding of `text` for `n_new` tokens, one full forward pass per token."""
    sequence, new = model.to_tokens(text), []
    with torch.no_grad():
        for _ in range(n_new):
            new.append(int(model(sequence)[0, -1].argmax()))
            sequence = torch.cat([sequence, sequence.new_tensor([[new[-1]]])], dim=1)
    return new


def test_steering_takes_a_new_prompt_and_generates_from_it(random_model, saes):
    widget = Steering(random_model, saes, PROMPT, features=[(RESID1, 3)], max_new_tokens=4)
    ok, reply = ask(widget, "prompt", text=NEW)
    assert ok, reply
    assert widget.tokens == reply["tokens"] == random_model.to_str_tokens(NEW)
    assert list(widget._baseline) == [widget._settings({})]  # the old prompt's generations are gone
    ok, generation = ask(widget, "generate")
    assert generation["baseline"] == [random_model.tokenizer.decode([i]) for i in greedy_ids(random_model, NEW, 4)]
    # the slider's end is measured on the new prompt: there it adds twice the mean norm of the hook's activation
    with torch.no_grad():
        _, cache = random_model.run_with_cache(random_model.to_tokens(NEW), names_filter=[RESID1])
    typical = float(cache[RESID1][0].norm(dim=-1).mean())
    added = float((widget.rows[0]["limit"] * saes[RESID1].W_dec[3]).norm())
    assert added / typical == pytest.approx(2.0, rel=5e-3)


def test_steering_prompt_code_reproduces_both_continuations(random_model, saes):
    widget = Steering(random_model, saes, PROMPT, features=[(RESID1, 3)], max_new_tokens=3)
    widget.scales = [widget.rows[0]["limit"]]
    ok, reply = ask(widget, "prompt", text=NEW)
    assert ok, reply
    code = widget.history[-1].code
    assert f"model.to_tokens({NEW!r})" in code and reply["code"].endswith(code)
    namespace = {"model": random_model, "saes": saes, "iw": iw}
    exec(code, namespace)
    baseline, steered = widget.continuations()
    assert [random_model.tokenizer.decode([i]) for i in namespace["baseline"]] == baseline
    assert [random_model.tokenizer.decode([i]) for i in namespace["steered"]] == steered


@pytest.mark.parametrize("kind", ["TokenFeatures", "Steering"])
@pytest.mark.parametrize(("text", "message"), [
    ("", "the prompt is empty: type some text"),
    ("word " * MAX_PROMPT_CHARS, "this view takes at most"),
    (" Mary went" * 200, "the model reads 1 to 256"),
])
def test_a_refused_prompt_leaves_the_sae_views_as_they_were(teaching_model, saes, kind, text, message):
    widget = (TokenFeatures(teaching_model, saes, PROMPT) if kind == "TokenFeatures"
              else Steering(teaching_model, saes, PROMPT, features=[(RESID1, 3)], max_new_tokens=2))
    before = (list(widget.tokens), widget.prompt_text, widget.prompt_version, len(widget.history), widget._repr_mimebundle_()[0]["text/html"])
    ok, error = ask(widget, "prompt", text=text)
    assert not ok and message in error
    assert (list(widget.tokens), widget.prompt_text, widget.prompt_version, len(widget.history),
            widget._repr_mimebundle_()[0]["text/html"]) == before


def test_the_explorer_has_one_box_that_reprompts_its_token_and_attention_views(random_model, saes):
    explorer = Explorer(random_model, saes, PROMPT, hook=RESID1, feature=2, corpus=torch.zeros(2, 8, dtype=torch.long))
    assert explorer.token_features.prompt_box and not explorer.attention.prompt_box  # the user sees one box
    explorer.selection.token = 3
    ok, reply = ask(explorer.token_features, "prompt", text=NEW)
    assert ok, reply
    new_tokens = random_model.to_str_tokens(NEW)
    assert explorer.token_features.tokens == explorer.attention.tokens == new_tokens
    assert (explorer.attention.prompt_text, explorer.attention.prompt_version) == (NEW, 1)
    assert explorer.selection.token is None  # a token of the old prompt is no longer pinned
    with torch.no_grad():
        _, cache = random_model.run_with_cache(random_model.to_tokens(NEW))
    torch.testing.assert_close(explorer.attention.result.pattern(1, 2), cache["blocks.1.attn.hook_pattern"][0, 2], atol=2e-3, rtol=0)
    assert "iw.lens.attention_patterns(model, " in explorer.code() and "iw.sae.feature_activations(model, " in explorer.code()
    assert explorer.set_prompt(PROMPT) == "" and explorer.attention.tokens == random_model.to_str_tokens(PROMPT)
