"""Exercise checks for the teaching tutorials: each answers right or wrong with a hint (`Feedback`).

    answer = ...                                   # the student's cell
    iw.teach.name_movers(model, answer)            # ✗ Not yet (name movers): ... Hint: ...

A check computes its expected answer itself, by a route other than the one the tutorial teaches (attention
patterns read by hand, hooks written out, the weights), so a right answer agrees with an independent method.
"""

from interpwidgets.teach.feedback import Feedback

__all__ = ["Feedback"]

from interpwidgets.teach.steering import cue_features, steering_effect, strongest_feature  # noqa: E402

__all__ += ["strongest_feature", "steering_effect", "cue_features"]

from interpwidgets.teach.ioi import duplicate_token_heads, induction_heads, name_movers, s_inhibition  # noqa: E402

__all__ += ["name_movers", "s_inhibition", "induction_heads", "duplicate_token_heads"]

from interpwidgets.teach.features import promoted_token  # noqa: E402

__all__ += ["promoted_token"]

from interpwidgets.teach.sae import dead_fraction, explained_variance, mean_l0  # noqa: E402

__all__ += ["explained_variance", "mean_l0", "dead_fraction"]
