"""iw.lens.logit_lens: every residual stream read through the final norm and the unembedding, checked against
TransformerLens's own accumulated residual stream."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import pytest
import torch

from interpwidgets.lens import LogitLensResult, logit_lens
from interpwidgets.lens.logit_lens import token_id
from interpwidgets.models import load_model
from interpwidgets.models.families import save_random_family

matplotlib.use("Agg")

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def gpt2_model(tmp_path_factory):
    """A GPT-2-shaped random model (LayerNorm with random weight and bias, learned positions)."""
    return load_model(str(save_random_family("gpt2", tmp_path_factory.mktemp("gpt2"))), device="cpu")


@pytest.fixture(scope="module")
def lens(teaching_model) -> LogitLensResult:
    return logit_lens(teaching_model, PROMPT, k=5, progress=False)


def tl_reference_logits(model, tokens: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """[layer, pos, vocab] from TransformerLens: `accumulated_resid(apply_ln=True)` up to the final layer runs each
    row through the model's ln_final with that row's own statistics (in TransformerLens 4 this includes ln_final's
    weight and bias: it calls the module), then W_U and b_U."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        stack, labels = cache.accumulated_resid(apply_ln=True, return_labels=True)  # [layer, 1, pos, d_model]
        return stack[:, 0] @ model.W_U + model.b_U, labels


def hand_reference_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    """[layer, pos, vocab] by hand from the weights: LayerNorm (x - mean) / sqrt(var + eps) * w + b of each cached
    residual row, then W_U and b_U (independent of the bridge's norm module and of TransformerLens's stacking)."""
    n_layers = model.cfg.n_layers
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        x = torch.stack([cache[name][0] for name in names])  # [layer, pos, d_model]
        centred = x - x.mean(-1, keepdim=True)
        normed = centred / (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
        return (normed * model.ln_final.weight + model.ln_final.bias) @ model.W_U + model.b_U


@pytest.mark.parametrize("which", ["teaching", "gpt2"])
def test_logit_lens_matches_transformer_lens_accumulated_resid(which, teaching_model, gpt2_model):
    """Every row's logits equal TransformerLens's accumulated residual stream through ln_final and W_U (and a hand
    LayerNorm from the weights), within 1e-4, on the trained teaching model and on a GPT-2-shaped random model; both
    have unfolded ln_final weights and biases, so a lens that dropped them would fail."""
    model = teaching_model if which == "teaching" else gpt2_model
    tokens = torch.randint(1, model.cfg.d_vocab, (1, 9), generator=torch.Generator().manual_seed(3))
    tokens[0, 0] = model.tokenizer.bos_token_id
    result = logit_lens(model, tokens, k=3, progress=False)
    reference, tl_labels = tl_reference_logits(model, tokens)
    torch.testing.assert_close(hand_reference_logits(model, tokens), reference, atol=1e-4, rtol=1e-4)
    n_layers = model.cfg.n_layers
    assert result.layers == [f"resid_pre{layer}" for layer in range(n_layers)] + [f"resid_post{n_layers - 1}"]
    assert len(tl_labels) == result.n_layers == n_layers + 1
    for row in range(result.n_layers):
        torch.testing.assert_close(result.logits(row), reference[row].float(), atol=1e-4, rtol=1e-4)
    top_probs, top_ids = reference.float().softmax(-1).topk(3, dim=-1)
    assert torch.equal(result.top_ids, top_ids)
    torch.testing.assert_close(result.top_probs, top_probs, atol=1e-5, rtol=1e-4)


def test_last_row_is_the_models_own_prediction(teaching_model, lens):
    """The final row is the model's real logits, and final_ids is their argmax at every position."""
    with torch.no_grad():
        logits = teaching_model(PROMPT)[0].float()
    torch.testing.assert_close(lens.logits(-1), logits, atol=1e-5, rtol=1e-5)
    assert torch.equal(lens.final_ids, logits.argmax(-1))
    assert lens.tokens == teaching_model.to_str_tokens(PROMPT)
    assert lens.n_tokens == len(lens.tokens) == lens.token_ids.shape[0]


def test_probs_ranks_and_top_agree_with_top_ids(lens):
    """For a token that is some cell's j-th most likely, probs() gives that cell's top_probs entry and ranks() gives j;
    top() lists the same tokens and probabilities as top_ids / top_probs."""
    for layer, pos in [(0, 0), (2, 5), (lens.n_layers - 1, lens.n_tokens - 1)]:
        for j in range(3):
            token = int(lens.top_ids[layer, pos, j])
            assert float(lens.probs(token)[layer, pos]) == pytest.approx(float(lens.top_probs[layer, pos, j]), abs=1e-6)
            assert int(lens.ranks(token)[layer, pos]) == j
        listed = lens.top(layer, pos, k=5)
        assert [p for _, p in listed] == pytest.approx(lens.top_probs[layer, pos].tolist(), abs=1e-6)
        assert [t for t, _ in listed] == [lens.model.tokenizer.decode([i]) for i in lens.top_ids[layer, pos].tolist()]
    mary = lens.token_id(" Mary")
    assert lens.probs(" Mary").shape == (lens.n_layers, lens.n_tokens)
    assert torch.equal(lens.ranks(" Mary"), lens.ranks(mary))
    assert lens.ranks(mary).dtype == torch.int64 and (lens.ranks(mary) >= 0).all()
    total = torch.stack([lens.logits(row).softmax(-1).sum(-1) for row in range(lens.n_layers)])
    torch.testing.assert_close(total, torch.ones_like(total))


def test_token_id_refuses_a_multi_token_string_or_a_bad_id(lens):
    """A string must be exactly one token: two words, a word the teaching tokenizer spells byte by byte (" Zzyzxq":
    a space and 6 letters, counted by hand) or a bad id raise errors saying so."""
    with pytest.raises(ValueError, match="not one token.*2 tokens"):
        lens.token_id("Mary John")
    with pytest.raises(ValueError, match=r"not one token.*7 tokens \[' ', 'Z', 'z', 'y', 'z', 'x', 'q'\]"):
        lens.probs(" Zzyzxq")
    with pytest.raises(ValueError, match="out of range"):
        lens.ranks(10**6)
    with pytest.raises(TypeError, match="int id or a one-token string"):
        lens.token_id(1.5)


def test_token_id_refuses_a_word_a_tokenizer_with_an_unknown_token_cannot_read():
    """A word-level tokenizer with <unk> (no byte fallback) encodes an unseen word as one token, <unk>: refused as
    unknown, not taken as the id of <unk>."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"<unk>": 0, "Mary": 1, "John": 2}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    model = SimpleNamespace(cfg=SimpleNamespace(d_vocab=3),
                            tokenizer=PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>"))
    assert token_id(model, "John") == 2 and token_id(model, "<unk>") == 0
    with pytest.raises(ValueError, match="'Zzyzxq' is not in the tokenizer's vocabulary"):
        token_id(model, "Zzyzxq")


def test_the_result_never_holds_a_layer_by_position_by_vocab_tensor(teaching_model, lens):
    """Only the normalised residuals [layer, pos, d_model] and the top-k are kept (a full [layer, pos, vocab] would
    be 670 MB for GPT-2 at 256 tokens)."""
    full = lens.n_layers * lens.n_tokens * teaching_model.cfg.d_vocab
    tensors = [v for v in vars(lens).values() if isinstance(v, torch.Tensor)]
    assert tensors and all(t.numel() < full for t in tensors)
    assert lens.normed.shape == (lens.n_layers, lens.n_tokens, teaching_model.cfg.d_model)
    assert lens.top_ids.shape == lens.top_probs.shape == (lens.n_layers, lens.n_tokens, 5)
    assert lens.top_ids.dtype == torch.int64 and lens.top_probs.dtype == torch.float32
    assert lens.top_ids.device.type == "cpu"


def test_bad_prompts_and_options_are_refused_with_clear_errors(teaching_model):
    """An empty prompt, one longer than the context, a batch of prompts and k outside [1, vocab] raise ValueErrors."""
    with pytest.raises(ValueError, match="empty"):
        logit_lens(teaching_model, "", progress=False)
    with pytest.raises(ValueError, match="tokens; the model reads 1 to"):
        logit_lens(teaching_model, torch.ones(teaching_model.cfg.n_ctx + 1, dtype=torch.long), progress=False)
    with pytest.raises(ValueError, match=r"shape \[n\] or \[1, n\]"):
        logit_lens(teaching_model, torch.ones(2, 4, dtype=torch.long), progress=False)
    with pytest.raises(ValueError, match="k must be"):
        logit_lens(teaching_model, PROMPT, k=0, progress=False)
    with pytest.raises(IndexError, match="out of range"):
        logit_lens(teaching_model, PROMPT, k=1, progress=False).logits(99)


def test_plot_draws_a_labelled_layer_by_position_grid(lens):
    """plot() draws one cell per (row, position) with its top token as text, labelled axes and a colorbar."""
    import matplotlib.pyplot as plt

    ax = lens.plot()
    assert ax.get_ylabel() and ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == lens.layers
    assert len(ax.texts) == lens.n_layers * lens.n_tokens
    assert ax.texts[-1].get_text() == lens.model.tokenizer.decode([int(lens.top_ids[-1, -1, 0])])
    assert len(ax.figure.axes) == 2  # the grid and its colorbar
    ax2 = lens.plot(token=" Mary")
    assert "Mary" in ax2.figure.axes[-1].get_ylabel()
    plt.close("all")
