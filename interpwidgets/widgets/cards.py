"""Compact cards: the self-displaying form of results that need no interactive view (an SAE, an evaluation, a
faithfulness curve, a linear-graph attribution, the notebook's model).

A card is plain HTML plus a text form (`text/plain`), so it reads the same in JupyterLab, an exported notebook and
a terminal. Nothing here runs the model: a card shows facts the object already holds.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from interpwidgets.widgets.static_html import BORDER, FONT, MUTED, TEXT, esc

EVALUATION_ROWS = (
    ("l0", "L0 (active latents per token)", "{:.1f}"),
    ("explained_variance", "explained variance", "{:.3f}"),
    ("mse", "MSE per dimension", "{:.3g}"),
    ("ce_loss_recovered", "CE loss recovered", "{:.3f}"),
    ("ce_loss_clean", "CE loss, model", "{:.3f}"),
    ("ce_loss_with_sae", "CE loss, SAE spliced in", "{:.3f}"),
    ("ce_loss_zero_ablation", "CE loss, output zero-ablated", "{:.3f}"),
    ("dead_fraction", "dead latents (never fired)", "{:.1%}"),
    ("dense_fraction", "dense latents (fire > 10% of tokens)", "{:.1%}"),
    ("n_tokens", "tokens evaluated", "{:,}"),
)
"""The rows of an evaluation card: key of `iw.sae.evaluate`'s result, its label, its format."""


class Card:
    """A titled table of (label, value) rows, with optional HTML below it; displays itself."""

    def __init__(self, title: str, rows: Sequence[tuple[str, str]] = (), *, extra_html: str = "", note: str = "") -> None:
        self.title, self.rows, self.extra_html, self.note = title, list(rows), extra_html, note

    def __repr__(self) -> str:
        width = max((len(label) for label, _ in self.rows), default=0)
        lines = [self.title, *(f"  {label.ljust(width)}  {value}" for label, value in self.rows)]
        return "\n".join(lines + ([f"  {self.note}"] if self.note else []))

    def _repr_html_(self) -> str:
        cells = "".join(
            f'<tr><td style="color:{MUTED};padding:1px 12px 1px 0;white-space:nowrap">{esc(label)}</td>'
            f'<td style="padding:1px 0;font-variant-numeric:tabular-nums">{esc(value)}</td></tr>'
            for label, value in self.rows
        )
        note = f'<div style="color:{MUTED};font-size:11px;margin-top:4px">{esc(self.note)}</div>' if self.note else ""
        return (
            f'<div class="iw-card" style="font-family:{FONT};font-size:13px;color:{TEXT};border:1px solid {BORDER};'
            f'border-radius:4px;padding:8px 10px;display:inline-block;max-width:100%;overflow-x:auto">'
            f'<div style="font-weight:600;margin-bottom:4px">{esc(self.title)}</div>'
            f"<table style=\"border-collapse:collapse\">{cells}</table>{self.extra_html}{note}</div>"
        )

    def _repr_mimebundle_(self, **_: Any) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


def sae_card(sae: Any) -> Card:
    """Architecture, hooks, widths, sparsity setting and where the dictionary was read from."""
    cfg = sae.cfg
    kind = "transcoder" if cfg.is_transcoder else "SAE"
    rows = [("architecture", f"{cfg.architecture} {kind}"), ("reads", cfg.hook_name)]
    if cfg.is_transcoder:
        rows.append(("writes", cfg.hook_name_out))
    rows.append(("d_in \u2192 d_sae \u2192 d_out", f"{cfg.d_in} \u2192 {cfg.d_sae:,} \u2192 {cfg.d_out}"))
    if cfg.k is not None:
        rows.append(("k (latents kept per token)", str(cfg.k)))
    threshold = getattr(sae, "threshold", None)
    if threshold is not None:
        t = threshold.detach().float()
        rows.append(("threshold (min / median / max)", f"{t.min():.3g} / {t.median():.3g} / {t.max():.3g}"))
    weight = sae.W_enc
    rows.append(("weights", f"{str(weight.dtype).removeprefix('torch.')} on {weight.device}"))
    if cfg.model_name:
        rows.append(("trained on", cfg.model_name))
    rows.append(("source", getattr(sae, "source", None) or "built in memory"))
    labels = getattr(sae, "labels", None)
    if labels:
        edited = f", {len(labels.edited)} edited" if labels.edited else ""
        first = next(iter(labels))
        rows.append(("feature labels", f"{len(labels):,} of {cfg.d_sae:,}{edited} (#{first}: {labels[first]})"))
    return Card(f"{type(sae).__name__}: {cfg.hook_name}", rows)


def sae_set_card(saes: Mapping[str, Any]) -> Card:
    """One row per dictionary of an `SAESet`: its key, architecture and width."""
    rows = []
    for hook, sae in saes.items():
        cfg = sae.cfg
        writes = f" \u2192 {cfg.hook_name_out}" if cfg.is_transcoder else ""
        k = f", k={cfg.k}" if cfg.k is not None else ""
        rows.append((f"{hook}{writes}", f"{cfg.architecture}, d_sae={cfg.d_sae:,}{k}"))
    return Card(f"SAESet: {len(rows)} dictionaries", rows, note="saes[hook] or saes['resid_post2'] for one of them")


def evaluation_card(stats: Mapping[str, Any]) -> Card:
    """`iw.sae.evaluate`'s numbers as a table with units."""
    rows = [(label, form.format(stats[key])) for key, label, form in EVALUATION_ROWS if key in stats]
    return Card(stats.get("title", "SAE evaluation"), rows)


def model_card(model: Any) -> Card:
    """The facts of a loaded model a user checks first."""
    cfg = model.cfg
    rows = [
        ("layers \u00d7 heads", f"{cfg.n_layers} \u00d7 {cfg.n_heads}"),
        ("d_model / d_head / d_mlp", f"{cfg.d_model} / {cfg.d_head} / {getattr(cfg, 'd_mlp', None)}"),
        ("vocabulary / context", f"{cfg.d_vocab:,} / {cfg.n_ctx:,}"),
        ("device, dtype", f"{cfg.device}, {str(getattr(cfg, 'dtype', '')).removeprefix('torch.')}"),
    ]
    return Card(f"model: {getattr(cfg, 'model_name', None) or type(model).__name__}", rows)


def attribution_card(attribution: Any, k: int = 12) -> Card:
    """A linear-graph `Attribution`: its target, value and the top-k contributions as signed bars."""
    top = attribution.top(k)
    scale = max((abs(n.effect) for n in top), default=1.0) or 1.0
    bars = "".join(
        f'<tr><td style="padding:1px 8px 1px 0;white-space:nowrap">{esc(n.id)}</td>'
        f'<td style="width:160px"><div style="height:9px;width:{80 * abs(n.effect) / scale:.0f}px;'
        f'margin-left:{80 if n.effect >= 0 else 80 - 80 * abs(n.effect) / scale:.0f}px;'
        f'background:{"#1976d2" if n.effect >= 0 else "#d32f2f"}"></div></td>'
        f'<td style="text-align:right;font-variant-numeric:tabular-nums">{n.effect:+.3f}</td></tr>'
        for n in top
    )
    rows = [("value", f"{attribution.value:.4g}"), ("contributions", f"{len(attribution.nodes):,} nodes"),
            ("remainder (rounding)", f"{attribution.remainder:.2g}")]
    table = f'<table style="border-collapse:collapse;margin-top:6px;font-size:12px">{bars}</table>'
    return Card(f"attribution to {attribution.target}", rows, extra_html=table,
                note=f"top {len(top)} by |effect|; .to_dataframe() for all")


class Figure:
    """A matplotlib plot as a PNG in the mime bundle (and its title as text). `draw(ax)` draws on a figure that
    pyplot does not hold, so the inline backend never shows it a second time."""

    def __init__(self, draw: Any, title: str, size: tuple[float, float] = (5.5, 3.4)) -> None:
        self.draw, self.title, self.size = draw, title, size

    def __repr__(self) -> str:
        return self.title

    def png(self) -> bytes:
        from matplotlib.figure import Figure as MatplotlibFigure

        figure = MatplotlibFigure(figsize=self.size)
        self.draw(figure.subplots())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        return buffer.getvalue()

    def _repr_mimebundle_(self, **_: Any) -> dict[str, Any]:
        return {"text/plain": self.title, "image/png": base64.b64encode(self.png()).decode("ascii")}


def faithfulness_figure(curve: Any) -> Figure:
    size = curve.size_at(0.8)
    reached = f"faithfulness 0.8 at {size} nodes" if size is not None else "faithfulness never reaches 0.8"
    return Figure(lambda ax: curve.plot(ax, title=f"faithfulness curve ({reached})"), f"FaithfulnessCurve: {reached}")


def graph_diff_figure(diff: Any, k: int = 12) -> Figure:
    """The nodes and edges that changed most between two attribution graphs, as two panels of signed bars."""
    a, b = diff.names
    n = min(k, max(len(diff.node_changes), len(diff.edge_changes), 1))

    def draw(ax: Any) -> None:
        figure = ax.figure
        ax.remove()
        diff.plot(k=n, axes=figure.subplots(1, 2))
        figure.set_size_inches(11, 0.32 * n + 1.2)

    return Figure(draw, f"GraphDiff {a} -> {b}: {len(diff.node_changes)} nodes, {len(diff.edge_changes)} edges compared")
