"""What a patching result's pictures say about it: the units of its values and a title naming the site (and
receivers), the direction and the normalisation. `PatchResult.plot` and `iw.widgets.PatchHeatmap` share them."""

from __future__ import annotations

from typing import Any

VARIANTS = {"atp": "atp", "ig": "integrated gradients"}


def metric_name(result: Any) -> str:
    """"logit difference" for the task's own metric (mean logit(answer) - logit(wrong)), else "metric"."""
    own = getattr(result.task, "metric", None)
    return "logit difference" if own is not None and result.metric == own else "metric"


def units_of(result: Any) -> str:
    """The values' units: "logit difference", or "normalized logit difference (0 = corrupt, 1 = clean)"."""
    name = metric_name(result)
    return f"normalized {name} (0 = corrupt, 1 = clean)" if result.normalized else name


def target_of(result: Any) -> str:
    """The site patched, with the receivers of a path-patching sweep: "z", "z \u2192 L2H1.q"."""
    receivers = result.details.get("receivers")
    return f"{result.site} \u2192 {', '.join(receivers)}" if receivers else result.site


def title_of(result: Any) -> str:
    """"Activation patching \u00b7 z \u00b7 clean into corrupt \u00b7 normalized logit difference (0 = corrupt, 1 = clean)"."""
    method, _, variant = result.method.partition("-")
    kind = f"{method.capitalize()} patching" + (f" ({VARIANTS.get(variant, variant)})" if variant else "")
    return f"{kind} \u00b7 {target_of(result)} \u00b7 {result.source} into {result.patch_into} \u00b7 {units_of(result)}"
