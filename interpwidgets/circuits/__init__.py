"""Circuits: sparse feature circuits, linear computation graphs with transcoders, linear probes.

    c = iw.circuits.feature_circuit(model, saes, task, method="ig")       # Marks et al. 2024
    r = iw.circuits.faithfulness(model, saes, task, c)                    # .faithfulness .completeness
    a = iw.circuits.ablate_nodes(model, saes, task, [c.node("resid_post1/5@3")])   # .metric_ablated
    g = iw.circuits.linear_graph(model, saes, tokens)                     # Ge et al. 2024
    a = g.attribute(iw.circuits.LogitTarget(answer, wrong))               # exact, sums to the target
    h = iw.circuits.hierarchical_attribution(g, target, depth=3)          # a Circuit
    with iw.sae.ablate_features(model, saes, h): ...                      # its features ablated (SHIFT)

Node ids and site names are places in the short-name grammar ("resid_post2/153@7", "attn1/error@3"), which
`interventions.components.parse_node` reads.

Importing this package is cheap: everything loads on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Circuit": "graph", "Node": "graph", "Edge": "graph", "node_id": "graph",
    "feature_circuit": "feature_circuit",
    "node_effects": "effects", "NodeEffects": "effects",
    "edge_effects": "edges",
    "faithfulness": "faithfulness", "faithfulness_curve": "faithfulness", "size_at_faithfulness": "faithfulness",
    "Faithfulness": "faithfulness", "FaithfulnessCurve": "faithfulness",
    "ablate_nodes": "faithfulness", "NodeAblation": "faithfulness",
    "linear_graph": "linear_graph", "LinearGraph": "linear_graph", "Attribution": "linear_graph",
    "FeatureTarget": "linear_graph", "LogitTarget": "linear_graph",
    "hierarchical_attribution": "hierarchical",
    "qk_attribution": "qk", "QKAttribution": "qk",
    "attention_feature_heads": "heads",
    "LinearProbe": "probes", "probe_activations": "probes",
    "spurious_cue_dataset": "spurious", "SpuriousCueDataset": "spurious",
}


# Functions named like their module are bound now: once the submodule is imported anywhere, Python
# would otherwise set this attribute to the module and __getattr__ would never run.
from interpwidgets.circuits.feature_circuit import feature_circuit as feature_circuit  # noqa: E402
from interpwidgets.circuits.faithfulness import faithfulness as faithfulness  # noqa: E402
from interpwidgets.circuits.linear_graph import linear_graph as linear_graph  # noqa: E402


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"interpwidgets.circuits.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'interpwidgets.circuits' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
