"""What an exercise check answers: right or wrong, why, and a hint (`Feedback`), and the shared comparisons.

A check never raises on a wrong answer (a student's Run All goes on); it returns a `Feedback` that is truthy
when right, so a solution cell can `assert` it. In a notebook it shows as a green or red line.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Feedback:
    """The outcome of one exercise check."""

    exercise: str
    right: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.right

    def __str__(self) -> str:
        mark = "✓ Right" if self.right else "✗ Not yet"
        hint = f"\n  Hint: {self.hint}" if self.hint and not self.right else ""
        return f"{mark} ({self.exercise}): {self.message}{hint}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.right else "#cf222e"
        mark = "✓ Right" if self.right else "✗ Not yet"
        hint = (f"<div style='margin-top:2px'><b>Hint:</b> {html.escape(self.hint)}</div>"
                if self.hint and not self.right else "")
        return (f"<div class='iw-feedback' data-right='{str(self.right).lower()}' style='border-left:4px solid {colour};"
                f"padding:4px 10px;margin:4px 0'><b style='color:{colour}'>{mark}</b> "
                f"<i>{html.escape(self.exercise)}</i>: {html.escape(self.message)}{hint}</div>")


def right(exercise: str, message: str) -> Feedback:
    return Feedback(exercise, True, message)


def wrong(exercise: str, message: str, hint: str = "") -> Feedback:
    return Feedback(exercise, False, message, hint)


def unanswered(answer: Any) -> bool:
    """The exercise cell still holds its placeholder (`...` or None)."""
    return answer is Ellipsis or answer is None


def not_answered(exercise: str, hint: str) -> Feedback:
    return wrong(exercise, "no answer yet: replace the `...` in the exercise cell with yours and run it again.", hint)


def compare_sets(exercise: str, given: Iterable, expected: Iterable, what: str, hint: str,
                 allowed: Iterable = ()) -> Feedback:
    """Right when `given` holds every one of `expected` and nothing outside `expected` and `allowed` (borderline
    members that may be given or left out); otherwise says how many are missing or extra (not which)."""
    given_set, expected_set = set(given), set(expected)
    missing, extra = len(expected_set - given_set), len(given_set - expected_set - set(allowed))
    if not missing and not extra:
        return right(exercise, f"these are the {len(given_set)} {what}.")
    parts = [f"{missing} missing" if missing else "", f"{extra} that are not {what}" if extra else ""]
    return wrong(exercise, f"{len(given_set)} given: " + ", ".join(p for p in parts if p) + ".", hint)


def compare_number(exercise: str, given: Any, expected: float, what: str, hint: str, rtol: float = 0.02,
                   atol: float = 1e-3) -> Feedback:
    """Right when `given` is a number within `rtol` (relative) or `atol` of `expected`."""
    try:
        value = float(given)
    except (TypeError, ValueError):
        return wrong(exercise, f"{what} should be a number, got {type(given).__name__}.", hint)
    if abs(value - expected) <= max(atol, rtol * abs(expected)):
        return right(exercise, f"{what} = {value:.4g}.")
    direction = "high" if value > expected else "low"
    return wrong(exercise, f"{what} = {value:.4g} is too {direction}.", hint)
