"""Interventions: ablate, patch and steer model components, always leaving the model untouched.

    import interpwidgets as iw
    with iw.interventions.ablate(model, ["L1H2", "mlp0"], ablation="mean", reference=task.corrupt_tokens):
        logits = model(task.clean_tokens)
    logits = iw.interventions.steer(model, "resid_pre2", direction, alpha=4.0, positions=[-1]).run(tokens)
    alpha = iw.interventions.steering_alpha(model, tokens, "resid_pre2", direction, ratio=2.0)  # 2x the typical norm
    new_ids = iw.interventions.generate(model, tokens, intervention=steer(...), max_new_tokens=10)

The generic plumbing (`hooked`, `run_hooked`) runs any list of `(hook_name, fn)` pairs with cleanup.
"""

from interpwidgets.interventions.ablation import ABLATIONS, ablate, check_ablation, patch, reference_activations
from interpwidgets.interventions.components import Component, parse_component, parse_components
from interpwidgets.interventions.generation import generate
from interpwidgets.interventions.hooks import check_hook_name, count_hooks, hooked, run_hooked
from interpwidgets.interventions.intervention import Intervention, combine
from interpwidgets.interventions.steering import steer, steering_alpha

__all__ = [
    "ABLATIONS", "Component", "Intervention", "ablate", "check_ablation", "check_hook_name", "combine", "count_hooks", "generate", "hooked",
    "parse_component", "parse_components", "patch", "reference_activations", "run_hooked", "steer", "steering_alpha",
]
