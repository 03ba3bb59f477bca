"""Exercise checks for the teaching tutorials: each answers right or wrong with a hint (`Feedback`).

    answer = ...                                   # the student's cell
    iw.teach.name_movers(model, answer)            # ✗ Not yet (name movers): ... Hint: ...

A check computes its expected answer itself, by a route other than the one the tutorial teaches (attention
patterns read by hand, hooks written out, the weights), so a right answer agrees with an independent method.
Modules: `patching` (01_patching), `ioi` (06_ioi_circuit), `steering` (08_steering), `features` (02_features), `sae` (SAE quality numbers).
"""

from interpwidgets.teach.features import promoted_token
from interpwidgets.teach.feedback import Feedback
from interpwidgets.teach.ioi import duplicate_token_heads, induction_heads, name_movers, s_inhibition
from interpwidgets.teach.patching import strongest_position
from interpwidgets.teach.sae import dead_fraction, explained_variance, mean_l0
from interpwidgets.teach.steering import cue_features, steering_effect, strongest_feature

__all__ = [
    "Feedback",
    "cue_features",
    "dead_fraction",
    "duplicate_token_heads",
    "explained_variance",
    "induction_heads",
    "mean_l0",
    "name_movers",
    "promoted_token",
    "s_inhibition",
    "steering_effect",
    "strongest_feature",
    "strongest_position",
]
