"""Exercise checks for the teaching tutorials: each answers right or wrong with a hint (`Feedback`).

    answer = ...                                   # the student's cell
    iw.teach.name_movers(model, answer)            # ✗ Not yet (name movers): ... Hint: ...

A check computes its expected answer itself, by a route other than the one the tutorial teaches (attention
patterns read by hand, hooks written out, the weights), so a right answer agrees with an independent method.
"""

from interpwidgets.teach.feedback import Feedback

__all__ = ["Feedback"]
