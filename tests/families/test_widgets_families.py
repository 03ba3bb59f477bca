"""Every widget on every row of the family matrix: one kernel round trip each through the widget's message
handler, its answer checked against a plain hooked forward of the model (grouped key/value heads,
rotary models without hook_pos_embed and Pythia's parallel blocks without hook_resid_mid included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interpwidgets as iw
from interpwidgets.models.tokens import token_strings
from interpwidgets.sae import SAEConfig, SAESet, build_sae
from interpwidgets.sae.corpus_stats import WINDOW
from interpwidgets.widgets import (
    AttentionPatterns,
    CircuitGraph,
    Explorer,
    FeatureDashboard,
    PatchHeatmap,
    Steering,
    TokenFeatures,
    testing,
)
from interpwidgets.widgets.testing import decode_array, decode_int32

PROMPT = "When Mary and John went to the store, John gave a drink to"
HOOK = "blocks.1.hook_resid_post"
D_SAE = 32


@pytest.fixture(scope="module")
def task(family_model):
    return iw.tasks.ioi(family_model, n=4, seed=0)


@pytest.fixture(scope="module")
def saes(family_model):
    """Random TopK SAEs (not trained) on the residual stream after every block."""
    return SAESet.of([
        build_sae(SAEConfig(d_in=family_model.cfg.d_model, d_sae=D_SAE, architecture="topk", k=4,
                            hook_name=f"blocks.{layer}.hook_resid_post"), seed=layer)
        for layer in range(family_model.cfg.n_layers)
    ])


def ask(widget, method: str, **params):
    """The result of one front-end request (buffers attached); fails the test on an error reply."""
    ok, result = testing.ask(widget, method, **params)
    assert ok, f"{result}\n{widget.last_error}"
    return result


def static_html(widget) -> str:
    bundle = widget._repr_mimebundle_()
    html = (bundle[0] if isinstance(bundle, tuple) else bundle)["text/html"]
    assert "no static preview" not in html
    return html


def metric_with(model, task, hooks) -> float:
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        return float(task.metric(model(task.clean_tokens)))


def without_feature(sae, feature: int, position: int | None = None):
    """A hook removing `feature`'s contribution `f * W_dec[feature]` (at every position, or one)."""
    def edit(x, hook):
        contribution = sae.encode(x)[..., feature, None] * sae.W_dec[feature]
        if position is not None:
            contribution[:, torch.arange(x.shape[1]) != position] = 0
        return x - contribution

    return edit


def test_attention_shows_every_query_head_with_grouped_values(family_model):
    model, layer, head = family_model, 2, 3
    widget = AttentionPatterns(model, PROMPT, layer=layer, head=head)
    tokens = model.to_tokens(PROMPT)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    n, n_heads = tokens.shape[1], model.cfg.n_heads
    assert (widget.n_layers, widget.n_heads) == (model.cfg.n_layers, n_heads)
    assert widget.tokens == model.to_str_tokens(tokens[0])

    thumbnails = decode_array(ask(widget, "thumbnails")["thumbnails"])
    assert thumbnails.shape == (n_heads, n, n)
    reply = ask(widget, "pattern")
    got = np.full((n, n), 0.0, np.float32)
    got[np.tril_indices(n)] = decode_array(reply["pattern"])
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0, head]
    np.testing.assert_allclose(got, pattern.numpy(), atol=1 / 255 + 1e-3)

    # value weighting: query head h reads key/value head h // (n_heads // n_key_value_heads)
    v = cache[f"blocks.{layer}.attn.hook_v"][0]  # [pos, kv_heads, d_head]
    group = n_heads // (model.cfg.n_key_value_heads or n_heads)
    assert v.shape[1] == n_heads // group
    for h in range(n_heads):
        alpha = cache[f"blocks.{layer}.attn.hook_pattern"][0, h]
        z = cache[f"blocks.{layer}.attn.hook_z"][0, :, h]
        torch.testing.assert_close(alpha @ v[:, h // group], z, atol=1e-5, rtol=1e-4)  # the model's own mapping
        norms = (v[:, h // group] @ model.W_O[layer, h].detach()).norm(dim=-1)
        widget.head, widget.weighting = h, "value"
        reply = ask(widget, "pattern")
        got[np.tril_indices(n)] = decode_array(reply["pattern"])
        np.testing.assert_allclose(got, (alpha * norms[None]).numpy(), atol=reply["domain_max"] / 255 + 1e-4)
    assert static_html(widget).count(f"L{layer}H") == n_heads + 1  # every head's thumbnail and the open one


def test_patch_heatmap_cell_zero_ablates_that_head(family_model, task):
    model, layer, head = family_model, 1, 2
    result = iw.patching.activation_patch(model, task, site="z", progress=False)
    widget = PatchHeatmap(result)
    assert widget.values["shape"] == [model.cfg.n_layers, model.cfg.n_heads]
    reply = ask(widget, "intervene", cells=[[layer, head]])

    def zero_head(z, hook):
        z = z.clone()
        z[:, :, head] = 0
        return z

    assert reply["metric_before"] == pytest.approx(metric_with(model, task, []), abs=1e-4)
    assert reply["metric_after"] == pytest.approx(metric_with(model, task, [(f"blocks.{layer}.attn.hook_z", zero_head)]),
                                                  abs=1e-4)
    assert reply["metric_after"] != pytest.approx(reply["metric_before"], abs=1e-6)
    assert len(reply["top_after"]["tokens"]) == len(decode_array(reply["top_after"]["probs"])) > 0
    assert "<svg" in static_html(widget)


def test_token_features_ablation_matches_a_hooked_forward(family_model, saes):
    model, sae = family_model, saes[HOOK]
    widget = TokenFeatures(model, saes, PROMPT, hook=HOOK)
    tokens = model.to_tokens(PROMPT)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[HOOK])
        acts = sae.encode(cache[HOOK])[0]
    position = tokens.shape[1] - 1
    feature = int(acts[position].argmax())
    widget.feature = feature
    values = ask(widget, "activations")["values"]
    np.testing.assert_allclose(decode_array(values), acts[:, feature].numpy(), rtol=2e-3, atol=2e-3)

    reply = ask(widget, "intervene", position=position)
    with torch.no_grad(), model.hooks(fwd_hooks=[(HOOK, without_feature(sae, feature))]):
        probs = model(tokens)[0, position].softmax(-1)
    top = probs.topk(widget.top_k)
    assert reply["after"]["tokens"] == token_strings(model, top.indices.tolist())
    np.testing.assert_allclose(decode_array(reply["after"]["probs"]), top.values.numpy(), rtol=2e-3, atol=1e-4)
    assert not np.allclose(decode_array(reply["after"]["probs"]), decode_array(reply["before"]["probs"]))
    assert f"activation of resid_post1/{feature}" in static_html(widget)


def test_feature_dashboard_statistics_over_a_corpus(family_model, saes, task):
    model, sae, corpus = family_model, saes[HOOK], task.clean_tokens
    widget = FeatureDashboard(model, saes, hook=HOOK, corpus=corpus)
    with torch.no_grad():
        _, cache = model.run_with_cache(corpus, names_filter=[HOOK])
        acts = sae.encode(cache[HOOK])  # [rows, seq, d_sae]
    feature = int(acts.amax(dim=(0, 1)).argmax())
    widget.feature = feature
    reply = ask(widget, "feature")
    assert reply["max"] == pytest.approx(float(acts[..., feature].max()), rel=1e-4)
    assert reply["density"] == pytest.approx(float((acts[..., feature] > 0).float().mean()))
    row = int(decode_int32(reply["examples"]["rows"])[0])
    peak = int(acts[row, :, feature].argmax())
    before, after = WINDOW
    window = corpus[row, max(0, peak - before): peak + after + 1].tolist()
    assert reply["examples"]["tokens"][0] == token_strings(model, window)
    effects = (sae.W_dec[feature] @ model.W_U).detach().topk(8)
    assert reply["logits"]["top"]["tokens"] == token_strings(model, effects.indices.tolist())
    assert f"Feature {feature} \u00b7 resid_post1" in static_html(widget)


def test_steering_generates_what_a_hooked_greedy_loop_generates(family_model, saes):
    model, sae, feature, n_new = family_model, saes[HOOK], 5, 4
    widget = Steering(model, saes, PROMPT, features=[(HOOK, feature)], max_new_tokens=n_new)
    scale = widget.rows[0]["limit"]
    widget.scales = [scale]
    reply = ask(widget, "generate")

    def greedy(hooks) -> list[str]:
        sequence, new = model.to_tokens(PROMPT), []
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            while len(new) < n_new:
                new.append(int(model(sequence)[0, -1].argmax()))
                if new[-1] == model.tokenizer.eos_token_id:
                    break
                sequence = torch.cat([sequence, sequence.new_tensor([[new[-1]]])], dim=1)
        return token_strings(model, new)

    def steer(x, hook):
        return x + scale * sae.W_dec[feature].detach()

    assert reply["baseline"] == greedy([])
    assert reply["steered"] == greedy([(HOOK, steer)])
    assert f"{HOOK} #{feature}" in reply["description"]
    assert "steered" in static_html(widget)


def test_circuit_graph_node_ablation_matches_a_hooked_forward(family_model, saes, task):
    model = family_model
    circuit = iw.circuits.feature_circuit(model, saes, task, method="atp", kinds=("resid",), node_threshold=0.0,
                                          edges=False, progress=False)
    widget = CircuitGraph(circuit, model=model, saes=saes, task=task, ablation="zero")  # pruned to its largest nodes
    node = max((n for n in circuit.nodes if n.is_feature), key=lambda n: abs(n.effect))
    reply = ask(widget, "ablate", node=node.id)
    hook = f"blocks.{node.layer}.hook_resid_post"
    expected = metric_with(model, task, [(hook, without_feature(saes[hook], int(node.feature), node.position))])
    assert reply["metric_before"] == pytest.approx(metric_with(model, task, []), abs=1e-4)
    assert reply["metric_after"] == pytest.approx(expected, abs=1e-4)
    assert "support for the metric" in static_html(widget)


def test_explorer_links_its_views(family_model, saes, task):
    model = family_model
    explorer = Explorer(model, saes, PROMPT, hook=HOOK, corpus=task.clean_tokens)
    position = len(explorer.token_features.tokens) - 1
    token = ask(explorer.token_features, "token", position=position)
    features = decode_int32(token["indices"]).tolist()
    assert features and features[0] == int(explorer.token_features.activations()[position].argmax())
    explorer.dashboard.show(features[0])
    assert ask(explorer.dashboard, "feature")["feature"] == features[0]
    explorer.attention.weighting = "value"
    thumbnails = ask(explorer.attention, "thumbnails")["thumbnails"]
    assert thumbnails["shape"][0] == model.cfg.n_heads
    assert all(view.selection is explorer.selection for view in explorer.views)
    assert static_html(explorer).count('class="iw-static"') == 3
