"""Feature statistics over a token corpus for `FeatureDashboard`: top-activating examples, histograms, density.

For one dictionary, the corpus `[rows, seq]` is run through the model once; the dictionary's inputs are
kept (`[rows, seq, d_in]`, CPU) with, per feature, each row's maximum and its position, the number of
active tokens and a histogram of the nonzero activations over `HISTOGRAM_BINS` equal bins from 0 to the
feature's maximum. A feature's examples are re-encoded from the kept inputs of its top rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from interpwidgets.sae.activations import hook_activations, token_batches, token_rows
from interpwidgets.sae.hooks import as_dictionary_input
from interpwidgets.widgets.feature_data import device_of
from interpwidgets.widgets.tokens import require_tokenizer, token_strings

HISTOGRAM_BINS = 32
CORPUS_SEED = 20_240_601  # a stream of the teaching corpus that the widgets read; any seed works
CORPUS_ROWS = 128
CORPUS_SEQ = 64
BATCH_ROWS = 32


def corpus_tokens(model: Any, corpus: Any = None, rows: int = CORPUS_ROWS, seq: int = CORPUS_SEQ) -> torch.Tensor:
    """Token rows `[rows, seq]`: a tensor as given, a list of texts packed into rows, or (None) the teaching corpus."""
    if not isinstance(corpus, torch.Tensor):
        require_tokenizer(model, "the teaching corpus" if corpus is None else "a corpus of texts",
                          "pass corpus= as token rows (an integer tensor [rows, seq])")
    if corpus is None:
        return next(token_batches(model, None, rows, seq, CORPUS_SEED))
    tokens = token_rows(model, corpus, seq)
    if tokens is None or tokens.ndim != 2 or tokens.numel() == 0:
        raise ValueError("the corpus is empty; pass token rows [rows, seq] or a list of texts.")
    if int(tokens.min()) < 0 or int(tokens.max()) >= model.cfg.d_vocab:
        raise ValueError(f"corpus token ids must lie in [0, {model.cfg.d_vocab - 1}].")
    return tokens.long()


@dataclass
class Example:
    """A context window around one row's maximum: `tokens` [w] strings, `values` [w] activations, `peak` index."""

    row: int
    start: int
    tokens: list[str]
    values: torch.Tensor
    peak: int


class FeatureCorpus:
    """Statistics of every feature of `sae` over `tokens [rows, seq]` (computed once, at construction)."""

    def __init__(self, model: Any, sae: Any, tokens: torch.Tensor) -> None:
        self.model, self.sae, self.tokens = model, sae, tokens.cpu()
        rows, seq = tokens.shape
        d_sae = int(sae.cfg.d_sae)
        self.inputs = torch.empty(rows, seq, sae.cfg.d_in)
        self.row_max = torch.zeros(rows, d_sae)
        self.row_argmax = torch.zeros(rows, d_sae, dtype=torch.int32)
        self.active = torch.zeros(d_sae, dtype=torch.int64)
        with torch.no_grad():
            for start in range(0, rows, BATCH_ROWS):
                stop = min(rows, start + BATCH_ROWS)
                x = self._record(tokens[start:stop])
                self.inputs[start:stop] = x.float().cpu()
                acts = self._encode(x)
                self.row_max[start:stop], self.row_argmax[start:stop] = (v.cpu() for v in acts.max(dim=1))
                self.active += (acts > 0).sum(dim=(0, 1)).cpu()
            self.max = self.row_max.max(dim=0).values.clamp_min(0)
            self.histograms = self._histograms()

    @property
    def n_tokens(self) -> int:
        return self.tokens.numel()

    def density(self, feature: int) -> float:
        """Fraction of corpus tokens on which the feature is active (> 0)."""
        return int(self.active[feature]) / self.n_tokens

    def examples(self, feature: int, n: int, before: int, after: int) -> list[Example]:
        """The `n` rows where the feature peaks highest (only rows where it is active), as windows around the peak."""
        peaks = self.row_max[:, feature]
        order = peaks.argsort(descending=True)[:n]
        rows = [int(r) for r in order if peaks[r] > 0]
        if not rows:
            return []
        with torch.no_grad():
            values = self._encode(self.inputs[rows].to(device_of(self.model)))[..., feature].float().cpu()
        out = []
        seq = self.tokens.shape[1]
        for i, row in enumerate(rows):
            peak = int(self.row_argmax[row, feature])
            start, stop = max(0, peak - before), min(seq, peak + after + 1)
            out.append(Example(row, start, token_strings(self.model, self.tokens[row, start:stop].tolist()),
                               values[i, start:stop], peak - start))
        return out

    def _record(self, tokens: torch.Tensor) -> torch.Tensor:
        hook = self.sae.cfg.hook_name
        return as_dictionary_input(hook_activations(self.model, tokens, [hook])[hook], self.sae.cfg.d_in, hook)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.sae.encode(x.to(self.sae.W_enc.dtype))

    def _histograms(self) -> torch.Tensor:
        """`[d_sae, HISTOGRAM_BINS]` counts of nonzero activations in equal bins over (0, max]."""
        counts = torch.zeros(self.row_max.shape[1], HISTOGRAM_BINS, dtype=torch.int64)
        top = self.max.clamp_min(1e-12)
        device = device_of(self.model)
        for start in range(0, self.tokens.shape[0], BATCH_ROWS):
            acts = self._encode(self.inputs[start:start + BATCH_ROWS].to(device)).float().cpu().flatten(0, 1)
            feature = torch.arange(acts.shape[1]).expand_as(acts)
            active = acts > 0
            bins = (acts / top * HISTOGRAM_BINS).long().clamp(0, HISTOGRAM_BINS - 1)
            flat = (feature * HISTOGRAM_BINS + bins)[active]
            counts.view(-1).index_add_(0, flat, torch.ones_like(flat))
        return counts
