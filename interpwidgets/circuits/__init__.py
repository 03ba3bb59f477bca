"""Circuits: sparse feature circuits, linear computation graphs with transcoders, linear probes.

    c = iw.circuits.feature_circuit(model, saes, task, method="ig")       # Marks et al. 2024
    r = iw.circuits.faithfulness(model, saes, task, c)                    # .faithfulness .completeness
    a = iw.circuits.ablate_nodes(model, saes, task, [c.node("resid_post1/5@3")])   # .metric_ablated
    g = iw.circuits.linear_graph(model, saes, tokens)                     # Ge et al. 2024
    a = g.attribute(iw.circuits.LogitTarget(answer, wrong))               # exact, sums to the target
    h = iw.circuits.hierarchical_attribution(g, target, depth=3)          # a Circuit
    ag = iw.circuits.attribution_graph(model, saes, prompt)               # every active transcoder feature
    p = ag.prune(0.8, 0.98); ag.scores(); ag.faithfulness(p)              # circuit-tracer pruning, real ablation
    iw.circuits.to_neuronpedia(ag, "g.json"); iw.circuits.from_neuronpedia("g.json")   # circuit-tracer JSON
    with iw.sae.ablate_features(model, saes, h): ...                      # its features ablated (SHIFT)

Node ids and site names are places in the short-name grammar ("resid_post2/153@7", "attn1/error@3"), which
`interventions.components.parse_node` reads.
"""

from interpwidgets.circuits.attribution_graph import AttributionGraph, Pruning, attribution_graph
from interpwidgets.circuits.edges import edge_effects
from interpwidgets.circuits.effects import NodeEffects, node_effects
from interpwidgets.circuits.faithfulness import (
    Faithfulness,
    FaithfulnessCurve,
    NodeAblation,
    ablate_nodes,
    faithfulness,
    faithfulness_curve,
    size_at_faithfulness,
)
from interpwidgets.circuits.feature_circuit import feature_circuit
from interpwidgets.circuits.graph import Circuit, Edge, Node, node_id
from interpwidgets.circuits.graph_diff import GraphDiff, graph_diff
from interpwidgets.circuits.graph_runs import GraphFaithfulness, GraphIntervention
from interpwidgets.circuits.heads import attention_feature_heads
from interpwidgets.circuits.hierarchical import hierarchical_attribution
from interpwidgets.circuits.influence import GraphScores
from interpwidgets.circuits.linear_graph import Attribution, FeatureTarget, LinearGraph, LogitTarget, linear_graph
from interpwidgets.circuits.neuronpedia import from_neuronpedia, to_neuronpedia
from interpwidgets.circuits.probes import LinearProbe, probe_activations
from interpwidgets.circuits.qk import QKAttribution, qk_attribution
from interpwidgets.circuits.spurious import SpuriousCueDataset, spurious_cue_dataset

__all__ = [
    "Attribution", "AttributionGraph", "Circuit", "Edge", "Faithfulness", "FaithfulnessCurve", "FeatureTarget",
    "GraphDiff", "GraphFaithfulness", "GraphIntervention", "GraphScores", "LinearGraph", "LinearProbe", "LogitTarget", "Node",
    "NodeAblation", "NodeEffects", "Pruning", "QKAttribution", "SpuriousCueDataset", "ablate_nodes", "attribution_graph", "attention_feature_heads", "edge_effects", "faithfulness", "faithfulness_curve",
    "feature_circuit", "from_neuronpedia", "graph_diff", "hierarchical_attribution", "linear_graph", "node_effects", "node_id", "probe_activations",
    "qk_attribution", "size_at_faithfulness", "spurious_cue_dataset", "to_neuronpedia",
]
