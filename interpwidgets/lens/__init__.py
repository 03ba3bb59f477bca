"""Lenses: what a model's internals show on one prompt, read without changing the run.

    import interpwidgets as iw
    result = iw.lens.attention_patterns(model, "When Mary and John went to the store, John gave a drink to")
    result.patterns            # [layer, head, query, key] attention probabilities
    result.pattern(1, 2, weighting="value")   # [query, key] weighted by the size of what each key writes
    iw.widgets.AttentionPatterns(result)
    lens = iw.lens.logit_lens(model, "When Mary and John went to the store, John gave a drink to")
    lens.top_ids               # [layer, pos, k] each residual stream's top next tokens through the final norm
    lens.probs(" Mary")        # [layer, pos] one token's probability at every cell
    dla = iw.lens.direct_logit_attribution(model, iw.tasks.ioi(model, n=16))
    dla.heads                  # [layer, head] direct effects on logit(answer) - logit(wrong), summing to it exactly
    dla.intervene(["L3H0"])    # an Outcome: the logit difference with that head zero-ablated
"""

from interpwidgets.lens.attention import UNITS, WEIGHTINGS, AttentionResult, attention_patterns
from interpwidgets.lens.dla import DLAResult, direct_logit_attribution
from interpwidgets.lens.logit_lens import LogitLensResult, logit_lens

__all__ = [
    "UNITS", "WEIGHTINGS", "AttentionResult", "DLAResult", "LogitLensResult", "attention_patterns",
    "direct_logit_attribution", "logit_lens",
]
