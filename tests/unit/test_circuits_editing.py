"""Feature ablation over several dictionaries (SHIFT's intervention, `iw.sae.ablate_features` with an SAESet or
a Circuit), linear probes and the spurious-cue data set."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits.graph import Circuit, Node
from interpwidgets.circuits.probes import LinearProbe, probe_activations
from interpwidgets.circuits.spurious import ACTIVE, CALM, spurious_cue_dataset
from interpwidgets.sae import SAEConfig, build_sae
from interpwidgets.sae.editing import ablate_features
from interpwidgets.sae.sets import SAESet

RESID = "blocks.1.hook_resid_post"
TC_IN, TC_OUT = "blocks.2.ln2.hook_normalized", "blocks.2.hook_mlp_out"


@pytest.fixture(scope="module")
def saes(random_model):
    d = random_model.cfg.d_model
    return SAESet.of([
        build_sae(SAEConfig(d_in=d, d_sae=64, hook_name=RESID), seed=0),
        build_sae(SAEConfig(d_in=d, d_sae=64, hook_name=TC_IN, hook_name_out=TC_OUT), seed=1),
    ])


@pytest.fixture(scope="module")
def tokens(random_model):
    return iw.tasks.induction(random_model, n=2, seed=0, length=6).clean_tokens


def cached(model, tokens, names):
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    return {n: cache[n] for n in names}


def edited_logits(model, tokens, intervention):
    with intervention:
        return model(tokens)


def test_zero_ablation_removes_exactly_the_chosen_features_decoder_contribution(random_model, saes, tokens):
    sae = saes[RESID]
    clean = cached(random_model, tokens, [RESID])[RESID]
    f = sae.encode(clean)
    chosen = [int(i) for i in f.sum((0, 1)).argsort(descending=True)[:3]]
    ablation = ablate_features(random_model, saes, {RESID: chosen})
    with ablation:
        edited = cached(random_model, tokens, [RESID])[RESID]
    assert torch.equal(ablation.run(tokens), edited_logits(random_model, tokens, ablation))
    expected = clean - f[..., chosen] @ sae.W_dec[chosen]
    assert torch.allclose(edited, expected, atol=1e-5)
    assert sae.encode(edited)[..., chosen].abs().max() < sae.encode(clean)[..., chosen].abs().max()


def test_a_circuits_transcoder_nodes_ablate_the_transcoder_at_the_mlp_output(random_model, saes, tokens):
    tc = saes[TC_IN]
    clean = cached(random_model, tokens, [TC_IN, TC_OUT])
    a = tc.encode(clean[TC_IN])
    chosen = [int(a.sum((0, 1)).argmax())]
    circuit = Circuit([Node(f"mlp2/{chosen[0]}@3", 2, "mlp", chosen[0], 3, dictionary=TC_IN)])
    with ablate_features(random_model, saes, circuit):
        edited = cached(random_model, tokens, [TC_OUT])[TC_OUT]
    assert torch.allclose(edited, clean[TC_OUT] - a[..., chosen] @ tc.W_dec[chosen], atol=1e-5)


def test_positions_restrict_the_ablation(random_model, saes, tokens):
    sae = saes[RESID]
    clean = cached(random_model, tokens, [RESID])[RESID]
    f = sae.encode(clean)
    with ablate_features(random_model, saes, {RESID: [2, 5]}, positions=[1, 4]):
        edited = cached(random_model, tokens, [RESID])[RESID]
    expected = clean.clone()
    expected[:, [1, 4]] -= f[:, [1, 4]][..., [2, 5]] @ sae.W_dec[[2, 5]]
    assert torch.allclose(edited, expected, atol=1e-5)


def test_mean_ablation_sets_features_to_their_per_position_mean(random_model, saes, tokens):
    sae = saes[RESID]
    clean = cached(random_model, tokens, [RESID])[RESID]
    f = sae.encode(clean)
    chosen = [int(f.sum((0, 1)).argmax())]
    with ablate_features(random_model, saes, {RESID: chosen}, ablation="mean", reference=tokens):
        edited = cached(random_model, tokens, [RESID])[RESID]
    expected = clean - (f[..., chosen] - f[..., chosen].mean(0)) @ sae.W_dec[chosen]
    assert torch.allclose(edited, expected, atol=1e-5)


def test_hooks_are_removed_after_the_context_even_on_error(random_model, saes, tokens):
    before = random_model(tokens)
    with pytest.raises(RuntimeError, match="boom"):
        with ablate_features(random_model, saes, {RESID: [0, 1, 2]}):
            raise RuntimeError("boom")
    assert torch.equal(random_model(tokens), before)


def test_bad_feature_selections_raise_clear_errors(random_model, saes):
    with pytest.raises(ValueError, match=r"integer in \[0, 63\], got 64"):
        ablate_features(random_model, saes, {RESID: [64]})
    with pytest.raises(ValueError, match="No SAE reads"):
        ablate_features(random_model, saes, {"blocks.0.hook_resid_post": [1]})
    with pytest.raises(ValueError, match="No features to ablate"):
        ablate_features(random_model, saes, Circuit([Node("attn1/error", 1, "attn", "error", dictionary=RESID)]))
    with pytest.raises(ValueError, match="names no dictionary"):
        ablate_features(random_model, saes, Circuit([Node("resid_post1/3", 1, "resid_post", 3)]))
    with pytest.raises(ValueError, match="reference="):
        ablate_features(random_model, saes, {RESID: [1]}, ablation="mean")
    with pytest.raises(ValueError, match="ablation must be one of"):
        ablate_features(random_model, saes, {RESID: [1]}, ablation="resample")
    with pytest.raises(TypeError, match="feature indices"):
        ablate_features(random_model, saes[RESID], {RESID: [1]})


def test_linear_probe_separates_separable_data_and_reads_pooled_activations(random_model, tokens):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(80, 5, generator=gen)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    probe = LinearProbe.fit(x, y)
    assert probe.accuracy(x, y) == 1.0
    acts = probe_activations(random_model, tokens, RESID, pooling="last")
    assert acts.shape == (2, random_model.cfg.d_model)
    with pytest.raises(ValueError, match="0 or 1"):
        LinearProbe.fit(x, y + 1)


def test_spurious_cue_data_is_ambiguous_in_training_and_balanced_in_test(random_model):
    data = spurious_cue_dataset(random_model, n_train=16, n_test=16, seed=0)
    assert torch.equal(data.train_labels, data.train_cues)
    assert {k: len(v) for k, v in data.groups().items()} == {(0, 0): 4, (0, 1): 4, (1, 0): 4, (1, 1): 4}
    assert data.train_tokens.shape == (16, 9) and data.test_tokens.shape == (16, 9)
    for text, y, c in zip(data.test_texts, data.test_labels, data.test_cues):
        assert text.split()[3] in (ACTIVE if y == 1 else CALM)
        assert text.endswith("!" if c == 1 else ".")
