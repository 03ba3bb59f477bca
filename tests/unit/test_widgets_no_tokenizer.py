"""Every widget on a model loaded without a tokenizer (token ids only): prompts and corpora as ids, tokens shown
as "#id" in the live widget and the static preview, and a text prompt refused with the fix named."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.models.families import save_random_family
from interpwidgets.sae import SAEConfig, SAESet, build_sae
from interpwidgets.widgets import (
    AttentionPatterns, CircuitGraph, Explorer, FeatureDashboard, PatchHeatmap, Steering, TokenFeatures,
)
from interpwidgets.widgets.testing import ask

HOOK = "blocks.1.hook_resid_post"
ASK_FOR_IDS = "pass token ids"


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, tmp_path_factory):
    folder = save_random_family(request.param, tmp_path_factory.mktemp(f"{request.param}-ids"), tokenizer=False)
    model = iw.load_model(str(folder), device="cpu")
    assert model.tokenizer is None
    return model


@pytest.fixture(scope="module")
def task(random_model):
    """IOI prompts as token ids of the shared teaching vocabulary (built with the teaching model's tokenizer)."""
    return iw.tasks.ioi(random_model, n=4, seed=0)


@pytest.fixture(scope="module")
def ids(task) -> list[int]:
    return task.clean_tokens[0].tolist()


@pytest.fixture(scope="module")
def saes(model):
    return SAESet.of([
        build_sae(SAEConfig(d_in=model.cfg.d_model, d_sae=16, architecture="topk", k=4,
                            hook_name=f"blocks.{layer}.hook_resid_post"), seed=layer)
        for layer in range(model.cfg.n_layers)
    ])


def names(ids: list[int]) -> list[str]:
    return [f"#{i}" for i in ids]




def static_html(widget) -> str:
    bundle = widget._repr_mimebundle_()
    return (bundle[0] if isinstance(bundle, tuple) else bundle)["text/html"]


@pytest.mark.parametrize("shape", ["list", "seq", "batch"])
def test_attention_takes_ids_in_any_shape_and_shows_them(model, ids, shape):
    prompt = {"list": ids, "seq": torch.tensor(ids), "batch": torch.tensor([ids])}[shape]
    widget = AttentionPatterns(model, prompt)
    assert widget.tokens == names(ids) and widget.n_heads == model.cfg.n_heads
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]))
    torch.testing.assert_close(widget.result.patterns[1].float(), cache["blocks.1.attn.hook_pattern"][0], atol=1e-3, rtol=0)
    widget.layer, widget.head, widget.weighting = 1, 3, "value"
    ok, result = ask(widget, "pattern")
    assert ok, result
    assert f"1:#{ids[1]}" in static_html(widget)


@pytest.mark.parametrize("make", [
    lambda model, saes: AttentionPatterns(model, "When Mary"),
    lambda model, saes: TokenFeatures(model, saes, "When Mary"),
    lambda model, saes: Steering(model, saes, "When Mary"),
    lambda model, saes: Explorer(model, saes, "When Mary", corpus=torch.zeros(2, 4, dtype=torch.long)),
], ids=["attention", "token_features", "steering", "explorer"])
def test_a_text_prompt_is_refused_with_the_fix(model, saes, make):
    with pytest.raises(ValueError, match=f"no tokenizer.*{ASK_FOR_IDS}"):
        make(model, saes)


@pytest.mark.parametrize("corpus", [None, ["When Mary and John"]], ids=["teaching corpus", "texts"])
def test_a_corpus_must_be_token_rows(model, saes, corpus):
    with pytest.raises(ValueError, match=r"no tokenizer.*corpus= as token rows"):
        FeatureDashboard(model, saes, corpus=corpus)


def test_token_features_show_ids_and_predict_ids(model, saes, ids):
    widget = TokenFeatures(model, saes, torch.tensor(ids), hook=HOOK, action="steer", alpha=8.0)
    assert widget.tokens == names(ids)
    ok, result = ask(widget, "intervene", position=len(ids) - 1)
    assert ok, result
    with torch.no_grad():
        top = model(torch.tensor([ids]))[0, -1].topk(widget.top_k).indices.tolist()
    assert result["before"]["tokens"] == names(top) and all(t.startswith("#") for t in result["after"]["tokens"])
    assert f"#{ids[2]}" in static_html(widget)


def test_feature_dashboard_shows_examples_as_ids(model, saes, task):
    widget = FeatureDashboard(model, saes, hook=HOOK, corpus=task.clean_tokens)
    widget.feature = feature = int(widget.stats().max.argmax())
    example = widget.stats().examples(feature)[0]
    start = example.position - example.focus
    assert example.str_tokens == names(task.clean_tokens[example.row, start:].tolist())[: len(example.str_tokens)]
    ok, result = ask(widget, "feature")
    assert ok, result
    assert result["examples"]["tokens"][0] == example.str_tokens
    assert all(t.startswith("#") for t in result["logits"]["top"]["tokens"])
    assert "no static preview" not in static_html(widget)


def test_steering_writes_ids(model, saes, ids):
    widget = Steering(model, saes, ids, features=[(HOOK, 3)], max_new_tokens=3)
    assert widget.tokens == names(ids)
    widget.scales = [widget.rows[0]["limit"]]
    ok, result = ask(widget, "generate")
    assert ok, result
    baseline, steered = widget.generate(scales=[widget.rows[0]["limit"]])
    assert baseline == " ".join(result["baseline"]) and steered == " ".join(result["steered"])
    assert all(t.startswith("#") for t in result["baseline"] + result["steered"])
    html = static_html(widget)
    assert "no static preview" not in html and " ".join(names(ids[1:])) in html


def test_patch_heatmap_on_ids(model, task):
    widget = PatchHeatmap(iw.patching.activation_patch(model, task, site="resid_pre", progress=False))
    assert widget.labels[-1][1] == f"1: #{task.clean_tokens[0, 1]}"
    assert "no static preview" not in static_html(widget)
    ok, result = ask(widget, "intervene", cells=[[1, 2]])
    assert ok, result
    assert all(t.startswith("#") for t in result["top_after"]["tokens"])


def test_circuit_graph_on_ids(model, saes, task):
    circuit = iw.circuits.feature_circuit(model, saes, task, method="atp", kinds=("resid",), node_threshold=0.0,
                                          edges=False, progress=False)
    widget = CircuitGraph(circuit, model=model, saes=saes, task=task, ablation="zero")
    node = max((n for n in circuit.nodes if n.is_feature), key=lambda n: abs(n.effect))
    ok, result = ask(widget, "ablate", node=node.id)
    assert ok, result
    assert result["metric_before"] == pytest.approx(circuit.metadata["metric_clean"], abs=1e-4)
    assert "no static preview" not in static_html(widget)


def test_explorer_on_ids(model, saes, ids, task):
    explorer = Explorer(model, saes, ids, hook=HOOK, corpus=task.clean_tokens)
    assert explorer.token_features.tokens == explorer.attention.tokens == names(ids)
    ok, result = ask(explorer.token_features, "token", position=2)
    assert ok, result
    assert "no static preview" not in static_html(explorer)
