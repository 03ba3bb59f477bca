"""Patching: activation patching, path patching and attribution patching, all returning `PatchResult`.

    import interpwidgets as iw
    r = iw.patching.activation_patch(model, task, site="resid_pre")          # [layer, position]
    r = iw.patching.path_patch(model, task, senders="heads", receivers="logits")  # [layer, head]
    r = iw.patching.attribution_patch(model, task, site="z", method="ig")    # [layer, head]
    r.plot(); r.to_dataframe(); r.intervene([(1, 2)], ablation="mean")

Every method takes `patch_into`: "corrupt" patches clean activations into the corrupt run (the default of
activation and attribution patching), "clean" corrupt ones into the clean run (path patching's default);
and `normalize` (default True: 0 = the corrupt run's metric, 1 = the clean run's).
"""

from interpwidgets.patching.activation import activation_patch
from interpwidgets.patching.attribution import attribution_patch
from interpwidgets.patching.path import path_patch
from interpwidgets.patching.result import Outcome, PatchResult
from interpwidgets.patching.sites import SITES

__all__ = ["SITES", "Outcome", "PatchResult", "activation_patch", "attribution_patch", "path_patch"]
