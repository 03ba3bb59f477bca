"""Gradient attribution methods and the one integrated-gradients quadrature rule shared by patching and circuits.

- "atp": attribution patching (Nanda 2023; Syed et al. 2023): the first-order estimate
  (a_patch - a_base) . dm/da, with the gradient taken on the base run.
- "ig": integrated gradients (Sundararajan et al. 2017) along the straight line from the base activation to the
  patched one, (a_patch - a_base) . mean_alpha dm/da(a_base + alpha (a_patch - a_base)), with the mean over
  `steps` points by the midpoint rule, alpha = (i + 1/2) / steps: exact for metrics quadratic in alpha, and it
  never evaluates at the endpoints (which the "atp" estimate and the two runs already give).
"""

from __future__ import annotations

ATTRIBUTION_METHODS = ("atp", "ig")


def check_method(method: str, steps: int) -> None:
    """Raise a ValueError naming the valid choices if `method` or `steps` is not one."""
    if method not in ATTRIBUTION_METHODS:
        hint = " ('grad' is now called 'atp')" if method == "grad" else ""
        raise ValueError(f"method must be one of {ATTRIBUTION_METHODS}, got {method!r}{hint}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int (integration points of 'ig'), got {steps!r}.")


def ig_alphas(steps: int) -> list[float]:
    """The integration points of "ig": the midpoints (i + 0.5) / steps, i = 0 .. steps - 1."""
    return [(i + 0.5) / steps for i in range(steps)]
