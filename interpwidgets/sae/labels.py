"""Short feature labels ("clerps") made offline from a corpus: `label_features`, and `FeatureLabels`, the labels of one
dictionary with the numbers each came from, stored in `labels.json` beside its weights.

    labels = iw.sae.label_features(model, sae)     # every feature, from the model's own held-out corpus
    labels[153]                                    # '" Mary"/" John" -> " to"'
    labels.evidence(153)                           # top tokens with activations, top logits with values, density
    sae.labels[153] = "name mover"                 # an edit: saved at once, and kept when labels are made again

A label names the tokens where the feature peaks highest (`" Mary"/" John"`, with `/…` when those two cover less than
half of its top examples, or `after " at"` when the peaks differ but the token before them does not) and, for a
dictionary that writes the residual stream's width, the token its decoder direction promotes most through the
unembedding (`-> " to"`, as `logit_effects` computes it), when that token stands out from the rest of the vocabulary
(`PROMOTES_Z` standard deviations above the mean effect; the evidence keeps the top ones either way). A feature active on no token of the corpus is "dead".

Files: `labels.json` = {format_version, d_sae, hook_name, n_tokens, labels: {"i": text}, evidence: {"i": {d: density,
t: [[token, context before it, activation, count], ...], l: [[token, logit], ...]}}, edited: [i, ...]}; written
atomically. `iw.sae.load` and `iw.sae.pretrained` bind each dictionary's labels to the file beside its weights (read
when it exists, on first use), so an edit is saved there. Where that folder is not writable (a read-only install), edits go to a
per-user override file instead (`override_path`: under $XDG_CACHE_HOME or ~/.cache, keyed by the labels file's path),
which loading applies on top of the bundled labels.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import json
import os
import warnings
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from interpwidgets.models.files import write_text_atomic
from interpwidgets.sae.base import SAE
from interpwidgets.sae.corpus_stats import feature_stats
from interpwidgets.sae.features import check_feature, logit_effects, writes_residual
from interpwidgets.sae.formats import LABELS_FILE

FORMAT_VERSION = 1
MAX_LABEL = 40  # characters in a generated label
MAX_TOKEN = 14  # characters of one token inside a label ("<|endoftext|>" fits)
PROMOTES_Z = 3.0  # a label names the top promoted token only when it stands this many standard deviations out
CONTEXT = 3  # tokens of context kept before each peak token in the evidence
DEAD = "dead"


class LabelsFormatError(ValueError):
    """A labels file that cannot be read as the labels of this dictionary."""


@dataclass(frozen=True)
class FeatureEvidence:
    """What one feature's label was made from, over a corpus of `FeatureLabels.n_tokens` tokens.

    Numbers are kept to 4 significant digits. density: fraction of the tokens where the feature is active. tokens: the distinct tokens at its top-activating
    peaks, strongest first, as (token, the `CONTEXT` tokens before it in its strongest example, its largest
    activation, how many of the top examples peak on it). logits: the tokens its decoder direction promotes most,
    (token, `W_dec[i] @ W_U` entry), strongest first (empty for a dictionary that does not write the residual width).
    """

    density: float
    tokens: list[tuple[str, str, float, int]]
    logits: list[tuple[str, float]]

    def __post_init__(self) -> None:  # kept to 4 significant digits, as the file holds them
        object.__setattr__(self, "density", _round(self.density))
        object.__setattr__(self, "tokens", [(str(t), str(c), _round(a), int(n)) for t, c, a, n in self.tokens])
        object.__setattr__(self, "logits", [(str(t), _round(v)) for t, v in self.logits])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"d": self.density}
        if self.tokens:
            out["t"] = [list(entry) for entry in self.tokens]
        if self.logits:
            out["l"] = [list(entry) for entry in self.logits]
        return out

    @classmethod
    def from_json(cls, raw: Any) -> FeatureEvidence:
        return cls(float(raw["d"]), [tuple(entry) for entry in raw.get("t", [])], [tuple(entry) for entry in raw.get("l", [])])


class FeatureLabels(MutableMapping):
    """The labels of one dictionary's features: a mapping {feature index: label} (features without one are absent),
    with `evidence(i)` for the generated ones and `edited`, the features whose label a user set.

    Bound to a file (`path`, set by `bind` or `load`), every change is written there at once, atomically; when the
    file's folder is not writable, the edits go to the per-user `override_path(path)` instead (see the module
    docstring), and `persisted_to` says where the last change went. Unbound (an SAE built or trained in memory),
    changes stay in memory until `save(path)` (or `iw.sae.save`, which writes them beside the weights).
    """

    def __init__(self, d_sae: int, labels: dict[int, str] | None = None, evidence: dict[int, FeatureEvidence] | None = None,
                 *, edited: set[int] | None = None, hook_name: str = "", n_tokens: int = 0):
        if isinstance(d_sae, bool) or not isinstance(d_sae, int) or d_sae <= 0:
            raise ValueError(f"d_sae must be a positive integer, got {d_sae!r}.")
        self.d_sae = d_sae
        self.hook_name = hook_name
        self.n_tokens = n_tokens
        self._labels = {check_feature(i, d_sae): _check_text(t) for i, t in (labels or {}).items()}
        self._evidence = {check_feature(i, d_sae): e for i, e in (evidence or {}).items()}
        self.edited = {check_feature(i, d_sae) for i in (edited or set())}
        self.path: Path | None = None
        self.persisted_to: Path | None = None

    # ---- the mapping ----------------------------------------------------------------------
    def __getitem__(self, feature: int) -> str:
        return self._labels[check_feature(feature, self.d_sae)]

    def __setitem__(self, feature: int, text: str) -> None:
        """Set a feature's label by hand: marked edited (label_features keeps it) and saved to the bound file."""
        feature = check_feature(feature, self.d_sae)
        self._labels[feature] = _check_text(text)
        self.edited.add(feature)
        self._persist()

    def __delitem__(self, feature: int) -> None:
        feature = check_feature(feature, self.d_sae)
        del self._labels[feature]
        self.edited.add(feature)  # a removal is an edit too: regeneration leaves the feature without a label
        self._persist()

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._labels))

    def __len__(self) -> int:
        return len(self._labels)

    def __repr__(self) -> str:
        where = f", bound to {str(self.path)!r}" if self.path else ""
        return f"FeatureLabels({len(self)} of {self.d_sae} features labelled, {len(self.edited)} edited{where})"

    def evidence(self, feature: int) -> FeatureEvidence | None:
        """The numbers the generated label of `feature` came from (None if it was never generated)."""
        return self._evidence.get(check_feature(feature, self.d_sae))

    # ---- files ----------------------------------------------------------------------------
    def to_json(self) -> str:
        """The labels.json text: one feature per line, so the bundled files diff well."""
        def block(items: dict[int, Any]) -> str:
            lines = ",\n".join(f"{json.dumps(str(i))}: {json.dumps(v, ensure_ascii=False, separators=(',', ':'))}"
                               for i, v in sorted(items.items()))
            return "{\n" + lines + "\n}" if lines else "{}"

        head = {"format_version": FORMAT_VERSION, "d_sae": self.d_sae, "hook_name": self.hook_name, "n_tokens": self.n_tokens}
        return (json.dumps(head)[:-1] + ', "labels": ' + block(self._labels)
                + ', "evidence": ' + block({i: e.to_json() for i, e in self._evidence.items()})
                + f', "edited": {json.dumps(sorted(self.edited))}}}\n')

    def save(self, path: str | os.PathLike) -> Path:
        """Write labels.json to `path` (a file, or a folder to write `labels.json` into), atomically; returns the file."""
        path = Path(path)
        if path.is_dir():
            path = path / LABELS_FILE
        return write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike, d_sae: int | None = None) -> FeatureLabels:
        """Read labels.json at `path` (a file or the folder holding it), checked against `d_sae` when given; bound to
        that file, with the user's override edits (if any) applied. A LabelsFormatError names the file and the fix."""
        path = Path(path)
        if path.is_dir():
            path = path / LABELS_FILE
        labels = _parse(path, d_sae)
        labels.path = path
        labels._apply_override()
        return labels

    def bind(self, path: str | os.PathLike) -> FeatureLabels:
        """Save later changes to the labels file `path` (or to its override where its folder is not writable)."""
        self.path = Path(path)
        return self

    def _persist(self) -> None:
        if self.path is None:
            return
        override = override_path(self.path)
        try:
            write_text_atomic(self.path, self.to_json())
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            edits = {"format_version": FORMAT_VERSION, "labels_file": str(self.path), "d_sae": self.d_sae,
                     "labels": {str(i): self._labels[i] for i in sorted(self.edited) if i in self._labels},
                     "edited": sorted(self.edited)}
            override.parent.mkdir(parents=True, exist_ok=True)
            self.persisted_to = write_text_atomic(override, json.dumps(edits, ensure_ascii=False, indent=1))
            return
        override.unlink(missing_ok=True)  # its edits are in the file now
        self.persisted_to = self.path

    def _apply_override(self) -> None:
        override = override_path(self.path)
        if not override.is_file():
            return
        raw = _read_json(override)
        try:
            edited = [check_feature(i, self.d_sae) for i in raw["edited"]]
            labels = {check_feature(int(i), self.d_sae): _check_text(t) for i, t in raw["labels"].items()}
        except (KeyError, TypeError, ValueError) as err:
            raise LabelsFormatError(f"{override} (your edits of the labels in {self.path}) is not a labels override "
                                    f"({err}); delete it to use the labels in {self.path}.") from err
        for i in edited:
            if i in labels:
                self._labels[i] = labels[i]
            else:
                self._labels.pop(i, None)
        self.edited.update(edited)


def override_path(labels_file: str | os.PathLike) -> Path:
    """The per-user file holding edits of the labels file `labels_file` when its folder is not writable:
    `$XDG_CACHE_HOME/interpwidgets/labels/<hash of its absolute path>.json` (~/.cache when XDG_CACHE_HOME is unset)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(Path(labels_file).resolve()).encode()).hexdigest()[:20]
    return cache / "interpwidgets" / "labels" / f"{key}.json"


def labels_file_for(source: str | os.PathLike) -> Path:
    """Where the labels of the dictionary loaded from `source` live: `labels.json` in its folder, or
    `<name>.labels.json` beside a dictionary that is one file (ae.pt, params.npz, a transcoder's .safetensors)."""
    source = Path(source)
    return source / LABELS_FILE if source.is_dir() else source.with_name(f"{source.stem}.{LABELS_FILE}")


def attach_labels(sae: SAE, source: str | os.PathLike) -> None:
    """Bind `sae.labels` to the labels file of `source` (see `labels_file_for`); the file is read when `sae.labels`
    is first used, so loading a dictionary costs nothing for labels it never shows."""
    sae.__dict__["_labels_file"] = labels_file_for(source)
    sae.__dict__.pop("_feature_labels", None)


def read_labels(sae: SAE) -> FeatureLabels:
    """The labels of `sae` from the file `attach_labels` bound (empty, and bound to it, where there is no file yet;
    empty and unbound for a dictionary that never had one). A file that cannot be read warns, naming the file and
    the fix, and gives empty labels bound to nothing, so the file is not overwritten: the weights stay usable."""
    path = sae.__dict__.get("_labels_file")
    empty = FeatureLabels(sae.cfg.d_sae, hook_name=sae.cfg.hook_name)
    if path is None:
        return empty
    if path.is_file():
        try:
            return FeatureLabels.load(path, sae.cfg.d_sae)
        except LabelsFormatError as err:
            warnings.warn(f"{err} The dictionary goes without labels.", stacklevel=3)
            return empty
    empty.bind(path)._apply_override()
    return empty


SAE.labels_reader = read_labels


def feature_label(sae: Any, feature: int) -> str | None:
    """The label of `feature` of `sae`, or None when it has none (also for dictionaries that carry no labels)."""
    labels = getattr(sae, "labels", None)
    return labels.get(feature) if labels is not None else None


@torch.no_grad()
def label_features(
    model: nn.Module, sae: SAE, corpus: torch.Tensor | None = None, *, k_tokens: int = 3, k_logits: int = 3,
    n_examples: int = 20, n_batches: int = 16, batch_size: int = 32, progress: bool | None = None,
) -> FeatureLabels:
    """A short label for every feature of `sae`, from its top-activating tokens and its top promoted logits.

    corpus: token rows `[batch, seq]`, or None for `n_batches` batches of `batch_size` rows of the teaching model's
    held-out corpus (the one `feature_stats` reads). The `n_examples` corpus rows where a feature peaks highest give
    its peak tokens; `k_tokens` distinct ones and `k_logits` promoted tokens are kept as its evidence.
    Labels the user edited (`sae.labels.edited`) are kept as they are. The result becomes `sae.labels`; when those
    are bound to a file (a dictionary from `iw.sae.load` or `iw.sae.pretrained`), it is written there, atomically.
    """
    if min(k_tokens, k_logits, n_examples) < 1:
        raise ValueError(f"k_tokens, k_logits and n_examples must be at least 1, got {k_tokens}, {k_logits}, {n_examples}.")
    stats = feature_stats(model, sae, corpus, n_batches=n_batches, batch_size=batch_size, n_examples=n_examples,
                          window=(CONTEXT, 0), bins=1, progress=progress)
    residual = writes_residual(model, sae)
    labels, evidence = {}, {}
    for i in range(sae.cfg.d_sae):
        density = float(stats.density[i])
        if density == 0:
            labels[i], evidence[i] = DEAD, FeatureEvidence(0.0, [], [])
            continue
        tokens, shares, before = _peak_tokens(stats.examples(i))
        effects = logit_effects(model, sae, i, k=k_logits) if residual else None
        logits = [(t, float(v)) for t, v in effects.top] if effects else []
        labels[i] = _label(tokens, shares, before, logits[0][0] if effects and _stands_out(effects.values) else None)
        evidence[i] = FeatureEvidence(density, tokens[:k_tokens], logits)
    previous = sae.labels
    for i in previous.edited:
        labels.pop(i, None)
        if i in previous:
            labels[i] = previous[i]
    result = FeatureLabels(sae.cfg.d_sae, labels, evidence, edited=previous.edited, hook_name=sae.cfg.hook_name,
                           n_tokens=stats.n_tokens)
    if previous.path is not None:
        result.bind(previous.path)._persist()
    sae.labels = result
    return result


def _peak_tokens(examples) -> tuple[list[tuple[str, str, float, int]], list[float], tuple[str, float]]:
    """Distinct peak tokens of `examples` as (token, context before, activation, count), by summed activation; each
    one's share of the summed activation; and the most common token before the peaks with its share."""
    weight, best, count = collections.Counter(), {}, collections.Counter()
    before = collections.Counter()
    for e in examples:
        token = e.str_tokens[e.focus]
        weight[token] += e.activation
        count[token] += 1
        best.setdefault(token, ("".join(e.str_tokens[:e.focus]), e.activation))  # examples come strongest first
        before[e.str_tokens[e.focus - 1] if e.focus else ""] += 1
    total = sum(weight.values())
    order = [t for t, _ in weight.most_common()]
    tokens = [(t, best[t][0], best[t][1], count[t]) for t in order]
    previous, n = before.most_common(1)[0]
    return tokens, [weight[t] / total for t in order], (previous, n / len(examples))


def _stands_out(values: torch.Tensor) -> bool:
    """Whether the largest of a feature's logit effects `[d_vocab]` lies `PROMOTES_Z` standard deviations above their mean."""
    return bool(values.max() - values.mean() >= PROMOTES_Z * values.std())


def _label(tokens, shares, before: tuple[str, float], promoted: str | None) -> str:
    """`" Mary"/" John" -> " to"`: the peak tokens (at most two; `/…` when they cover less than half the weight, or
    `after " at"` when the peaks are scattered but what precedes them is not), then the promoted token if any."""
    shown = [tokens[0][0]] + [t for (t, *_), s in zip(tokens[1:2], shares[1:2]) if s >= 0.25 * shares[0]]
    covered = sum(shares[:len(shown)])
    previous, share = before
    if covered < 0.5 and share >= 0.6 and previous:
        text = f"after {_quote(previous)}"
    else:
        text = "/".join(_quote(t) for t in shown) + ("/…" if covered < 0.5 else "")
    if promoted is not None:
        text += f" -> {_quote(promoted)}"
    return text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 1] + "…"


def _quote(token: str) -> str:
    """A token as it reads in a label: JSON-quoted (so spaces and newlines show), cut to `MAX_TOKEN` characters."""
    token = token if len(token) <= MAX_TOKEN else token[:MAX_TOKEN - 1] + "…"
    return json.dumps(token, ensure_ascii=False)


def _round(x: float) -> float:
    return float(f"{float(x):.4g}")


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise TypeError(f"A feature label must be a string, got {type(text).__name__}.")
    return text


def _read_json(path: Path) -> dict:
    try:
        raw = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LabelsFormatError(f"{path} is not valid JSON ({err}): the labels file is corrupt. Delete it, or make it "
                                "again with iw.sae.label_features(model, sae).") from err
    if not isinstance(raw, dict):
        raise LabelsFormatError(f"{path} holds a JSON {type(raw).__name__}, not a labels object.")
    return raw


def _parse(path: Path, d_sae: int | None) -> FeatureLabels:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; make labels with iw.sae.label_features(model, sae).")
    raw = _read_json(path)
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise LabelsFormatError(f"{path} has labels format_version {version!r}; this interpwidgets reads version "
                                f"{FORMAT_VERSION}. Upgrade interpwidgets, or make the labels again with iw.sae.label_features.")
    if d_sae is not None and raw.get("d_sae") != d_sae:
        raise LabelsFormatError(f"{path} labels a dictionary of d_sae={raw.get('d_sae')!r}, but this one has {d_sae} "
                                "features: the file belongs to another dictionary. Delete it or make it again with "
                                "iw.sae.label_features(model, sae).")
    try:
        return FeatureLabels(
            raw["d_sae"], {int(i): t for i, t in raw["labels"].items()},
            {int(i): FeatureEvidence.from_json(e) for i, e in raw.get("evidence", {}).items()},
            edited=set(raw.get("edited", [])), hook_name=str(raw.get("hook_name", "")), n_tokens=int(raw.get("n_tokens", 0)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise LabelsFormatError(f"{path} is not a labels file of this format ({type(err).__name__}: {err}). Delete it, "
                                "or make it again with iw.sae.label_features(model, sae).") from err
