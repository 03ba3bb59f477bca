"""`ablate_nodes`: the task metric with a few circuit nodes ablated and every other node clean, checked against
hooks written by hand from the SAEs' weights; and the nodes it refuses."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.circuits.faithfulness import ablate_nodes
from interpwidgets.circuits.graph import Node
from interpwidgets.sae import SAEConfig, SAESet, build_sae

D_SAE = 32


@pytest.fixture(scope="module")
def saes():
    return SAESet.of([
        build_sae(SAEConfig(d_in=128, d_sae=D_SAE, architecture="topk", k=4, hook_name=f"blocks.{layer}.hook_resid_post"),
                  seed=layer)
        for layer in range(4)
    ])


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=4, seed=0)


def feature(layer: int, index: int | str, position: int | None) -> Node:
    where = "" if position is None else f"@{position}"
    return Node(f"resid_post{layer}/{index}{where}", layer, "resid_post", index, position,
                dictionary=f"blocks.{layer}.hook_resid_post")


def metric_with(model, task, hooks) -> float:
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        return float(task.metric(model(task.clean_tokens)))


def test_zero_ablating_a_feature_node_removes_its_decoder_contribution_at_its_position(random_model, saes, task):
    sae = saes["blocks.1.hook_resid_post"]

    def remove(x, hook):
        x = x.clone()
        x[:, 3] -= sae.encode(x[:, 3])[:, 5, None] * sae.W_dec[5]
        return x

    result = ablate_nodes(random_model, saes, task, [feature(1, 5, 3)], ablation="zero")
    assert result.metric_clean == pytest.approx(metric_with(random_model, task, []), abs=1e-5)
    assert result.metric_ablated == pytest.approx(metric_with(random_model, task, [("blocks.1.hook_resid_post", remove)]), abs=1e-4)
    assert result.change == pytest.approx(result.metric_ablated - result.metric_clean)
    assert result.nodes == ("resid_post1/5@3",) and result.ablation == "zero"


def test_mean_ablating_a_feature_node_sets_it_to_its_mean_on_the_corrupt_prompts(random_model, saes, task):
    sae = saes["blocks.2.hook_resid_post"]
    with torch.no_grad():
        _, cache = random_model.run_with_cache(task.corrupt_tokens)
        mean = sae.encode(cache["blocks.2.hook_resid_post"])[:, 4, 7].mean()

    def to_mean(x, hook):
        f = sae.encode(x)[:, 4, 7]
        x = x.clone()
        x[:, 4] += (mean - f)[:, None] * sae.W_dec[7]
        return x

    result = ablate_nodes(random_model, saes, task, [feature(2, 7, 4)])
    assert result.metric_ablated == pytest.approx(metric_with(random_model, task, [("blocks.2.hook_resid_post", to_mean)]), abs=1e-4)


def test_zero_ablating_an_error_node_leaves_only_the_reconstruction(random_model, saes, task):
    sae = saes["blocks.0.hook_resid_post"]

    def drop_error(x, hook):
        x = x.clone()
        x[:, 2] = sae.decode(sae.encode(x[:, 2]))
        return x

    result = ablate_nodes(random_model, saes, task, [feature(0, "error", 2)], ablation="zero")
    assert result.metric_ablated == pytest.approx(metric_with(random_model, task, [("blocks.0.hook_resid_post", drop_error)]), abs=1e-4)


def test_an_embedding_node_and_a_summed_node_cover_their_position_and_every_position(random_model, saes, task):
    sae = saes["blocks.3.hook_resid_post"]

    def zero_position(x, hook):
        x = x.clone()
        x[:, 1] = 0
        return x

    def remove_everywhere(x, hook):
        return x - sae.encode(x)[..., 2, None] * sae.W_dec[2]

    embed = Node("resid_pre0@1", 0, "resid_pre", None, 1)
    result = ablate_nodes(random_model, saes, task, [embed, feature(3, 2, None)], ablation="zero")
    hooks = [("blocks.0.hook_resid_pre", zero_position), ("blocks.3.hook_resid_post", remove_everywhere)]
    assert result.metric_ablated == pytest.approx(metric_with(random_model, task, hooks), abs=1e-4)


def test_nodes_that_are_not_sae_site_nodes_are_refused(random_model, saes, task):
    transcoder = Node("mlp1/3@2", 1, "mlp", 3, 2, dictionary="blocks.1.ln2.hook_normalized")
    with pytest.raises(ValueError, match="iw.sae.ablate_features"):
        ablate_nodes(random_model, saes, task, [transcoder])
    with pytest.raises(ValueError, match="metric node cannot be ablated"):
        ablate_nodes(random_model, saes, task, [Node("metric", 4, "metric")])
    with pytest.raises(ValueError, match="not a node of site resid_post1"):
        ablate_nodes(random_model, saes, task, [feature(1, D_SAE, 3)])
    with pytest.raises(ValueError, match="ablation must be one of"):
        ablate_nodes(random_model, saes, task, [feature(1, 5, 3)], ablation="resample")
