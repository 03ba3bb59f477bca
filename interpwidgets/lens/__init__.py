"""Lenses: what a model's internals show on one prompt, read without changing the run.

    import interpwidgets as iw
    result = iw.lens.attention_patterns(model, "When Mary and John went to the store, John gave a drink to")
    result.patterns            # [layer, head, query, key] attention probabilities
    result.pattern(1, 2, weighting="value")   # [query, key] weighted by the size of what each key writes
    iw.widgets.AttentionPatterns(result)
"""

from interpwidgets.lens.attention import UNITS, WEIGHTINGS, AttentionResult, attention_patterns

__all__ = ["UNITS", "WEIGHTINGS", "AttentionResult", "attention_patterns"]
