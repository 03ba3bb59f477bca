"""The logit lens and direct logit attribution on every row of the family matrix (the teaching architecture and a
tiny random model of each Hugging Face family): LayerNorm and RMSNorm, learned and rotary positions, parallel
attention (Pythia), grouped-query attention, Gemma's scaled embeddings, sandwich norms and logit soft-cap."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.interventions import count_hooks, run_hooked
from interpwidgets.lens import direct_logit_attribution, logit_lens
from interpwidgets.tasks import Task


@pytest.fixture(scope="module")
def tiny(family_model):
    """3 prompts of 7 random tokens with random answer and wrong tokens."""
    gen = torch.Generator().manual_seed(0)
    vocab = family_model.cfg.d_vocab
    clean = torch.randint(1, vocab, (3, 7), generator=gen)
    corrupt = torch.randint(1, vocab, (3, 7), generator=gen)
    answers, wrongs = torch.randint(1, vocab, (2, 3), generator=gen)
    return Task("tiny", clean, corrupt, answers, wrongs)


def pre_cap_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    """The logits [batch, seq, vocab] before the final soft-cap (the unembedding's output), checked here to give the
    model's logits through cap * tanh(x / cap) on soft-capped models (Gemma 2) and to be them elsewhere."""
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=["unembed.hook_out"])
    pre = cache["unembed.hook_out"]
    cap = getattr(model.cfg, "output_logits_soft_cap", None)
    capped = cap * torch.tanh(pre / cap) if cap is not None and cap > 0 else pre
    torch.testing.assert_close(capped, logits, atol=1e-5, rtol=1e-5)
    return pre


def test_logit_lens_last_row_is_the_models_logits(family_model, tiny):
    """The lens's final row (resid_post of the last layer through ln_final, the unembedding and any soft-cap) is the
    model's own output at every position, and its top-1 the model's argmax."""
    tokens = tiny.clean_tokens[0]
    result = logit_lens(family_model, tokens, k=3, progress=False)
    with torch.no_grad():
        logits = family_model(tokens[None])[0].float()
    torch.testing.assert_close(result.logits(-1), logits, atol=1e-4, rtol=1e-4)
    assert torch.equal(result.final_ids, logits.argmax(-1))
    assert result.n_layers == family_model.cfg.n_layers + 1 and result.top_ids.shape == (result.n_layers, 7, 3)


def test_dla_components_sum_to_the_real_logit_difference(family_model, tiny):
    """On every family each prompt's direct effects sum to its real logit(answer) - logit(wrong) (before the soft-cap
    where the model soft-caps), with a pos_embed component exactly on models with learned positions."""
    result = direct_logit_attribution(family_model, tiny, progress=False)
    real = tiny.logit_diff(pre_cap_logits(family_model, tiny.clean_tokens)).cpu()
    torch.testing.assert_close(result.logit_diff, real, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(result.values.sum(1), real, atol=1e-4, rtol=1e-4)
    learned = family_model.cfg.positional_embedding_type == "standard"
    assert ("pos_embed" in result.labels) == learned
    assert result.heads.shape == (family_model.cfg.n_layers, family_model.cfg.n_heads)
    assert result.pre_cap == (getattr(family_model.cfg, "output_logits_soft_cap", -1) > 0)


def test_dla_intervene_zero_ablates_one_query_head(family_model, tiny):
    """Zero-ablating head L1H1 through intervene equals zeroing that query head's hook_z here (per query head also
    on grouped-query models), and no hooks are left."""
    result = direct_logit_attribution(family_model, tiny, progress=False)

    def zero(z, hook):
        z = z.clone()
        z[:, :, 1] = 0.0
        return z

    expected = _metric_with_hooks(family_model, tiny, [("blocks.1.attn.hook_z", zero)])
    outcome = result.intervene("L1H1")
    assert outcome.metric_after == pytest.approx(expected, abs=1e-4)
    assert count_hooks(family_model) == 0


def _metric_with_hooks(model, task: Task, hooks) -> float:
    """Mean logit difference (before any soft-cap) of the clean prompts under `hooks`."""
    kept = {}

    def keep(act, hook):
        kept["pre"] = act
        return act

    with torch.no_grad():
        run_hooked(model, task.clean_tokens, [*hooks, ("unembed.hook_out", keep)])
    return float(task.metric(kept["pre"]))
