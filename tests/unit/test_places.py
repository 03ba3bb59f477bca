"""One grammar for places in the model: what `Component.label` prints, `parse_component` reads back to the same hook,
and the same names work as circuit node ids and as SAESet keys."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.interventions.components import Component, layer_of, parse_component, parse_node
from interpwidgets.sae import SAEConfig, SAESet, build_sae

HOOKS = [
    ("blocks.1.attn.hook_z", 2, None), ("blocks.0.attn.hook_q", 1, None), ("blocks.2.attn.hook_pattern", 0, None),
    ("blocks.3.mlp.hook_post", None, 7), ("blocks.1.hook_attn_out", None, None), ("blocks.2.hook_mlp_out", None, None),
    ("blocks.0.hook_resid_pre", None, None), ("blocks.2.hook_resid_mid", None, None), ("blocks.3.hook_resid_post", None, None),
    ("hook_embed", None, None), ("blocks.1.ln2.hook_normalized", None, None),
]


@pytest.mark.parametrize(("hook", "head", "neuron"), HOOKS)
@pytest.mark.parametrize("positions", [None, (5,), (3, -1)])
def test_every_printed_place_reads_back_to_the_same_component(hook, head, neuron, positions):
    """label -> parse_component is the identity on hook, head, neuron and positions."""
    component = Component(hook, head=head, neuron=neuron, positions=positions)
    assert parse_component(component.label) == component, component.label


def test_aliases_and_hook_names_read_as_the_canonical_place():
    """`resid2` is `resid_post2` (the circuits' old spelling); hook names and (layer, head) pairs read too."""
    assert parse_component("resid2") == parse_component("resid_post2") == Component("blocks.2.hook_resid_post")
    assert parse_component("resid2").label == "resid_post2"
    assert parse_component((1, 2)) == parse_component("L1H2") == Component("blocks.1.attn.hook_z", head=2)
    assert parse_component("blocks.1.hook_resid_post@2") == Component("blocks.1.hook_resid_post", positions=(2,))


def test_circuit_node_ids_name_their_place_unit_and_position():
    assert parse_node("resid_post2/153@7") == (Component("blocks.2.hook_resid_post", positions=(7,)), 153)
    assert parse_node("attn1/error@3") == (Component("blocks.1.hook_attn_out", positions=(3,)), "error")
    assert parse_node("mlp0") == (Component("blocks.0.hook_mlp_out"), None)
    with pytest.raises(ValueError, match="<place>/<feature>@<position>"):
        parse_node("resid_post2/x@@7")


def test_layer_of_reads_the_block_index():
    assert layer_of("blocks.11.attn.hook_z") == 11 and layer_of("hook_embed") is None


def _sae(hook: str) -> torch.nn.Module:
    return build_sae(SAEConfig(architecture="relu", d_in=8, d_sae=16, hook_name=hook))


def test_saeset_keys_accept_place_names():
    """An SAESet is keyed by hook name, and a place short name (or its alias) finds the same dictionary."""
    saes = SAESet.of([_sae("blocks.2.hook_resid_post"), _sae("blocks.1.hook_mlp_out")])
    assert saes["resid_post2"] is saes["resid2"] is saes["blocks.2.hook_resid_post"]
    assert "mlp1" in saes and saes.get("mlp1") is saes["blocks.1.hook_mlp_out"]
    assert "attn1" not in saes and saes.get("L1H2") is None
    with pytest.raises(KeyError):
        saes["resid_post0"]
