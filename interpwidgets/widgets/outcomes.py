"""What a click that ran an intervention sends back: the metric before and after and the first prompt's top
predictions, from an `Outcome` (`PatchResult.intervene`, `DLAResult.intervene`); js/lib/outcome.ts draws it."""

from __future__ import annotations

import math
from typing import Any

from interpwidgets.widgets.feature_params import predictions
from interpwidgets.widgets.messages import RequestError


def outcome_fields(outcome: Any) -> dict[str, Any]:
    """The reply fields every outcome panel reads; a non-finite metric is refused rather than drawn."""
    before, after = float(outcome.metric_before), float(outcome.metric_after)
    if not (math.isfinite(before) and math.isfinite(after)):
        raise RequestError(f"the intervention gave a non-finite metric ({before} -> {after})")
    return {
        "description": ", ".join(outcome.components),
        "metric_before": before,
        "metric_after": after,
        "top_before": predictions(outcome.top_before),
        "top_after": predictions(outcome.top_after),
    }
