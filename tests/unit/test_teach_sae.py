"""SAE tutorial checks: right on the answer computed here through the dictionary's own forward pass and encode,
wrong (with a hint) on a nearby wrong answer, "no answer yet" on `...`, clear errors on mismatched activations."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.sae import SAEConfig, build_sae

ARCHITECTURES = ["relu", "topk", "jumprelu"]


def sae_and_acts(architecture: str):
    sae = build_sae(SAEConfig(d_in=8, d_sae=64, architecture=architecture, k=4 if architecture == "topk" else None), seed=3)
    x = torch.randn(5, 40, 8, generator=torch.Generator().manual_seed(1))
    return sae, x


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@torch.no_grad()
def test_explained_variance_right_on_forward_pass_value_wrong_when_variance_is_not_centred(architecture):
    sae, x = sae_and_acts(architecture)
    rows = x.reshape(-1, 8)
    ev = 1 - (rows - sae(rows)).pow(2).sum() / (rows - rows.mean(0)).pow(2).sum()
    assert iw.teach.explained_variance(sae, x, ev.item())
    uncentred = 1 - (rows - sae(rows)).pow(2).sum() / rows.pow(2).sum()  # a common slip: no mean subtracted
    fb = iw.teach.explained_variance(sae, x, uncentred.item() + 0.05)
    assert not fb and fb.hint


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@torch.no_grad()
def test_l0_and_dead_fraction_right_on_counts_from_encode_and_wrong_when_off(architecture):
    sae, x = sae_and_acts(architecture)
    f = sae.encode(x.reshape(-1, 8))
    l0 = (f > 0).float().sum(-1).mean().item()
    dead = sum(1 for j in range(64) if f[:, j].abs().max() == 0) / 64
    assert iw.teach.mean_l0(sae, x, l0)
    assert iw.teach.dead_fraction(sae, x, dead)
    assert not iw.teach.mean_l0(sae, x, l0 + 1) and iw.teach.mean_l0(sae, x, l0 + 1).hint
    assert not iw.teach.dead_fraction(sae, x, dead + 1 / 64)
    assert not iw.teach.dead_fraction(sae, x, dead * 64 + 1)  # a count instead of a fraction


def test_topk_l0_is_k_by_construction():
    """A TopK dictionary keeps its k=4 largest pre-activations per row; when all of them are positive (asserted
    for these inputs) every row has exactly 4 active features, so the check must accept 4 without any encoding."""
    sae, x = sae_and_acts("topk")
    pre = sae.encode_pre(x.reshape(-1, 8)).detach()
    assert (pre.topk(4, dim=-1).values > 0).all()
    assert iw.teach.mean_l0(sae, x, 4)


@pytest.mark.parametrize("check", [iw.teach.explained_variance, iw.teach.mean_l0, iw.teach.dead_fraction])
def test_placeholder_answers_no_answer_yet_and_non_numbers_fail_with_a_hint(check):
    sae, x = sae_and_acts("relu")
    fb = check(sae, x, ...)
    assert not fb and "no answer yet" in fb.message and fb.hint
    fb = check(sae, x, "0.5 maybe")
    assert not fb and "number" in fb.message


def test_activations_of_the_wrong_width_or_type_are_refused_with_the_fix():
    sae, x = sae_and_acts("relu")
    with pytest.raises(ValueError, match="width 7 but the SAE reads 8"):
        iw.teach.mean_l0(sae, x[..., :7], 1.0)
    with pytest.raises(TypeError, match="must be a tensor"):
        iw.teach.dead_fraction(sae, x.tolist(), 0.0)
