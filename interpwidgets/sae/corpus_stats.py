"""Statistics of every feature of one dictionary over a token corpus: density, activation histograms and the
top-activating contexts (what a feature dashboard shows).

The corpus `[rows, seq]` runs through the model once, in batches; the dictionary's inputs are kept on the CPU
meanwhile (`[rows, seq, d_in]`) and, per feature, the `n_examples` rows where it peaks highest. A second pass
encodes the kept inputs again for the histograms (equal bins over (0, the feature's maximum]) and the
activations around each kept peak. The result holds data only: no model, no dictionary.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from interpwidgets.config import progress_enabled
from interpwidgets.models.tokens import token_strings
from interpwidgets.sae.activations import CORPUS_SEED, hook_activations, token_batches, token_source
from interpwidgets.sae.base import SAE
from interpwidgets.sae.features import check_feature
from interpwidgets.sae.inputs import as_dictionary_input, check_hook, to_dictionary

FEATURE_SEED = CORPUS_SEED + 2  # the teaching-corpus stream read here: not SAE training's (+0) nor evaluation's (+1)
WINDOW = (10, 4)  # tokens of context kept before and after an example's peak


@dataclass(frozen=True)
class Example:
    """One top-activating context: the feature's `activation` at `position` of corpus row `row`, with a window."""

    activation: float
    row: int
    position: int
    str_tokens: list[str]  # the window's tokens
    activations: list[float]  # the feature's activation on each window token
    focus: int  # index of `position` within the window


@dataclass(frozen=True, repr=False)
class FeatureStats:
    """Every feature of the dictionary reading `hook`, over a corpus of `n_tokens` tokens.

    density: [d_sae] fraction of tokens where the feature is active (> 0). max: [d_sae] its largest activation
    (0 when never active). histograms: [d_sae, bins] counts of its nonzero activations in equal bins over
    (0, max]. str_tokens: [rows][seq] the corpus as display strings. top_rows, top_positions: [n_examples, d_sae]
    the rows where each feature peaks highest (strongest first; -1 past the rows where it is active) and the
    peak's position. windows: [n_examples, d_sae, before + 1 + after] its activations at positions
    peak - before ... peak + after (NaN outside the row), `window = (before, after)`.
    Read the contexts with `examples(feature)`.
    """

    hook: str
    n_tokens: int
    density: torch.Tensor
    max: torch.Tensor
    histograms: torch.Tensor
    str_tokens: list[list[str]]
    top_rows: torch.Tensor
    top_positions: torch.Tensor
    windows: torch.Tensor
    window: tuple[int, int]

    @property
    def d_sae(self) -> int:
        return self.density.numel()

    def examples(self, feature: int) -> list[Example]:
        """The feature's top-activating contexts, one per corpus row, strongest first (none where it never fires)."""
        feature = check_feature(feature, self.d_sae)
        before, after = self.window
        out = []
        for slot in range(self.top_rows.shape[0]):
            row, position = int(self.top_rows[slot, feature]), int(self.top_positions[slot, feature])
            if row < 0:
                break
            tokens = self.str_tokens[row]
            lo, hi = max(0, position - before), min(len(tokens), position + after + 1)
            values = self.windows[slot, feature, lo - position + before: hi - position + before]
            out.append(Example(float(self.windows[slot, feature, before]), row, position, tokens[lo:hi],
                               values.tolist(), position - lo))
        return out

    def __repr__(self) -> str:
        return (f"FeatureStats({self.hook!r}: {self.d_sae} features over {self.n_tokens} tokens, "
                f"{self.histograms.shape[1]} histogram bins, top {self.top_rows.shape[0]} rows of each, window {self.window})")


@torch.no_grad()
def feature_stats(
    model: nn.Module,
    sae: SAE,
    tokens: torch.Tensor | Sequence[str] | None = None,
    *,
    n_batches: int = 4,
    batch_size: int = 32,
    context_size: int | None = None,
    n_examples: int = 10,
    window: tuple[int, int] = WINDOW,
    bins: int = 32,
    progress: bool | None = None,
) -> FeatureStats:
    """Density, activation histogram and top-activating contexts of every feature of `sae` over a corpus.

    tokens: token rows [rows, seq], a list of texts (packed into rows of `context_size`), or None for
    `n_batches` batches of the teaching corpus. `batch_size` rows run through the model at a time (lower it to
    lower the peak memory). `window = (before, after)`: tokens of context kept around each example's peak.
    """
    check_hook(model, sae.cfg.hook_name)
    if min(n_examples, bins, batch_size) < 1 or min(window) < 0:
        raise ValueError(f"n_examples, bins and batch_size must be at least 1 and window = (before, after) at least 0, "
                         f"got n_examples={n_examples}, bins={bins}, batch_size={batch_size}, window={window}.")
    rows = _corpus(model, tokens, n_batches, batch_size, context_size)
    batches = list(rows.split(batch_size))
    with tqdm(total=2 * len(batches), desc="feature statistics", delay=1.0, leave=False,
              disable=not progress_enabled(progress)) as bar:
        inputs, active, peaks, top_rows, top_positions = _peaks(model, sae, batches, n_examples, bar)
        maxima = peaks[0].clamp_min(0)
        histograms, windows = _around_peaks(sae, inputs, maxima, top_rows, top_positions, bins, window, bar)
    return FeatureStats(
        hook=sae.cfg.hook_name, n_tokens=rows.numel(), density=active / rows.numel(), max=maxima, histograms=histograms,
        str_tokens=_str_tokens(model, rows), top_rows=top_rows, top_positions=top_positions, windows=windows,
        window=tuple(window),
    )


def _peaks(model: nn.Module, sae: SAE, batches: list[torch.Tensor], n: int, bar: tqdm,
           ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first pass: every batch's dictionary inputs (CPU), each feature's count of active tokens [d_sae], and per
    feature the `n` rows where it peaks highest, as values, rows and positions [n, d_sae] (-1 where it is not active)."""
    d_sae = int(sae.cfg.d_sae)
    inputs, active = [], torch.zeros(d_sae, dtype=torch.long)
    values, rows, positions = torch.zeros(n, d_sae), torch.full((n, d_sae), -1), torch.full((n, d_sae), -1)
    start = 0
    for batch in batches:
        x = _inputs(model, sae, batch)
        inputs.append(x.cpu())
        acts = sae.encode(to_dictionary(sae, x)).float()  # [batch, seq, d_sae]
        active += (acts > 0).sum((0, 1)).cpu()
        peak, where = (t.cpu() for t in acts.max(dim=1))  # [batch, d_sae]
        here = torch.arange(start, start + len(batch))[:, None].expand_as(where)
        values, order = torch.cat([values, peak]).topk(n, dim=0)
        rows, positions = torch.cat([rows, here]).gather(0, order), torch.cat([positions, where]).gather(0, order)
        start += len(batch)
        bar.update()
    inactive = values <= 0
    rows[inactive], positions[inactive] = -1, -1
    return inputs, active, values, rows, positions


def _around_peaks(sae: SAE, inputs: list[torch.Tensor], maxima: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor,
                  bins: int, window: tuple[int, int], bar: tqdm) -> tuple[torch.Tensor, torch.Tensor]:
    """The second pass, over the kept inputs: histograms [d_sae, bins] of the nonzero activations over (0, maxima], and
    the activations around each peak of `rows`/`positions`, [n, d_sae, before + 1 + after] (NaN outside the row)."""
    before, after = window
    d_sae, seq = maxima.numel(), inputs[0].shape[1]
    histograms = torch.zeros(d_sae * bins, dtype=torch.long)
    windows = torch.full((*rows.shape, before + 1 + after), float("nan"))
    offsets = torch.arange(-before, after + 1)
    start = 0
    for x in inputs:
        acts = sae.encode(to_dictionary(sae, x)).float()  # [batch, seq, d_sae]
        flat = acts.flatten(0, 1)
        token, feature = (flat > 0).nonzero(as_tuple=True)
        top = maxima.to(flat.device)[feature].clamp_min(1e-12)
        which = (flat[token, feature] / top * bins).long().clamp(0, bins - 1)
        histograms.index_add_(0, (feature * bins + which).cpu(), torch.ones(len(which), dtype=torch.long))
        slot, kept = ((rows >= start) & (rows < start + len(x))).nonzero(as_tuple=True)
        around = positions[slot, kept, None] + offsets  # [m, before + 1 + after]
        index = (rows[slot, kept, None] - start, around.clamp(0, seq - 1), kept[:, None])
        got = acts[tuple(i.to(acts.device) for i in index)].cpu()
        windows[slot, kept] = torch.where((around >= 0) & (around < seq), got, float("nan"))
        start += len(x)
        bar.update()
    return histograms.view(d_sae, bins), windows


def top_activating(
    model: nn.Module, sae: SAE, feature: int, tokens: torch.Tensor | Sequence[str] | None = None, *, k: int = 10,
    window: tuple[int, int] = WINDOW, n_batches: int = 16, batch_size: int = 32, context_size: int | None = None,
    progress: bool | None = None,
) -> list[Example]:
    """The `k` corpus rows where `feature` peaks highest, strongest first, each with `window` (tokens before,
    tokens after) of context: `feature_stats(...).examples(feature)`, with the same corpus arguments."""
    feature = check_feature(feature, sae.cfg.d_sae)
    stats = feature_stats(model, sae, tokens, n_batches=n_batches, batch_size=batch_size, context_size=context_size,
                          n_examples=k, window=window, progress=progress)
    return stats.examples(feature)


def _corpus(model: nn.Module, tokens, n_batches: int, batch_size: int, context_size: int | None) -> torch.Tensor:
    """The corpus as token rows [rows, seq] on the CPU (see `feature_stats`)."""
    rows, context = token_source(model, tokens, context_size)
    if rows is None:
        rows = torch.cat(list(itertools.islice(token_batches(model, None, batch_size, context, FEATURE_SEED), n_batches)))
    if rows.numel() == 0:
        raise ValueError("The corpus is empty: pass token rows [rows, seq] or a list of texts.")
    if int(rows.min()) < 0 or int(rows.max()) >= model.cfg.d_vocab:
        raise ValueError(f"Corpus token ids must lie in [0, {model.cfg.d_vocab - 1}].")
    return rows.cpu()


def _inputs(model: nn.Module, sae: SAE, rows: torch.Tensor) -> torch.Tensor:
    """The dictionary's inputs `[batch, seq, d_in]` on `rows [batch, seq]` (in the model's dtype and device)."""
    hook = sae.cfg.hook_name
    return as_dictionary_input(hook_activations(model, rows, [hook])[hook], sae.cfg.d_in, hook)


def _str_tokens(model: nn.Module, rows: torch.Tensor) -> list[list[str]]:
    """`rows [rows, seq]` as display strings, each distinct id decoded once."""
    ids = rows.unique().tolist()
    names = dict(zip(ids, token_strings(model, ids)))
    return [[names[i] for i in row] for row in rows.tolist()]
