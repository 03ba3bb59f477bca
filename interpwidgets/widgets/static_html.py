"""Static previews for the `text/html` entry of a widget's mime bundle.

Shown where widgets cannot run (exported HTML, notebook viewers, a closed kernel): self-contained
(matrices as PNG data URIs, colours and text inline, no script, no CDN), every token escaped. The colours
match the front end's light theme.
"""

from __future__ import annotations

import base64
import html
import math
import struct
import zlib

import numpy as np

BACKGROUND = (255, 255, 255)
ACCENT = (25, 118, 210)
NEGATIVE = (211, 47, 47)
FONT = "var(--jp-ui-font-family, system-ui, sans-serif)"
TEXT = "var(--jp-ui-font-color0, #1f1f1f)"
MUTED = "var(--jp-ui-font-color2, #757575)"
BORDER = "var(--jp-border-color2, #e0e0e0)"


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def display_token(token: str) -> str:
    """The token as the widgets show it: whitespace made visible, empty tokens marked."""
    if not token:
        return "\u2205"
    return token.replace("\n", "\u21b5").replace("\t", "\u21e5").replace("\r", "\u240d")


def _lerp(a: tuple[int, int, int], b: tuple[int, int, int], t: np.ndarray) -> np.ndarray:
    t = t[..., None]
    return np.asarray(a, np.float32) * (1 - t) + np.asarray(b, np.float32) * t


def sequential_rgb(values: np.ndarray, top: float) -> np.ndarray:
    """[..., 3] uint8 from the background (0) to the accent colour (`top`); NaN is background."""
    t = np.nan_to_num(np.clip(values / (top if top > 0 else 1.0), 0, 1), nan=0.0)
    return _lerp(BACKGROUND, ACCENT, t).round().astype(np.uint8)


def diverging_rgb(values: np.ndarray, abs_max: float) -> np.ndarray:
    """[..., 3] uint8: negative colour at -abs_max, background at 0, accent at +abs_max; NaN is background."""
    t = np.nan_to_num(np.clip(values / (abs_max if abs_max > 0 else 1.0), -1, 1), nan=0.0)
    negative = _lerp(BACKGROUND, NEGATIVE, -t)
    positive = _lerp(BACKGROUND, ACCENT, t)
    return np.where((t < 0)[..., None], negative, positive).round().astype(np.uint8)


def png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of a [height, width, 3] uint8 array."""
    height, width, _ = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)) + chunk(b"IEND", b"")


def png_data_uri(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png(rgb)).decode("ascii")


def image(rgb: np.ndarray, width: int, height: int, alt: str) -> str:
    """An <img> of `rgb` drawn at width x height CSS pixels without smoothing."""
    return (
        f'<img src="{png_data_uri(rgb)}" width="{width}" height="{height}" alt="{esc(alt)}" '
        f'style="image-rendering:pixelated;border:1px solid {BORDER};display:block">'
    )


def max_pool(matrix: np.ndarray, max_side: int) -> np.ndarray:
    """[rows, cols] reduced by block maxima (ignoring NaN) so neither side exceeds `max_side`."""
    rows, cols = matrix.shape
    block = max(1, -(-max(rows, cols) // max_side))
    if block == 1:
        return matrix
    padded = np.full((-(-rows // block) * block, -(-cols // block) * block), np.nan, np.float32)
    padded[:rows, :cols] = matrix
    blocks = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block)
    return np.fmax.reduce(np.fmax.reduce(blocks, axis=3), axis=1)


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "\u2026"


def heatmap_svg(rgb: np.ndarray, row_labels: list[str], col_labels: list[str]) -> str:
    """An SVG of a [rows, cols, 3] colour image with its row labels (left) and column labels (top, slanted)."""
    rows, cols, _ = rgb.shape
    cell_w, cell_h = max(4, min(36, 600 // cols)), max(4, min(24, 480 // rows))
    row_names = [_clip(label, 18) for label in row_labels]
    col_names = [_clip(label, 16) for label in col_labels]
    left = 12 + 6 * max(map(len, row_names), default=0)
    top = 12 + int(5.2 * max(map(len, col_names), default=0))  # room for labels slanted by 60 degrees
    step_r, step_c = max(1, math.ceil(11 / cell_h)), max(1, math.ceil(11 / cell_w))  # thin out unreadable labels
    text = [
        f'<text x="{left - 4}" y="{top + (r + 0.5) * cell_h:.1f}" text-anchor="end" dominant-baseline="middle">'
        f"{esc(row_names[r])}</text>"
        for r in range(0, rows, step_r)
    ] + [
        f'<text transform="translate({left + (c + 0.5) * cell_w:.1f},{top - 4}) rotate(-60)">{esc(col_names[c])}</text>'
        for c in range(0, cols, step_c)
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + cols * cell_w + 4}" height="{top + rows * cell_h + 4}" '
        f'style="font-size:10px;fill:currentColor;overflow:visible">'
        f'<image href="{png_data_uri(rgb)}" x="{left}" y="{top}" width="{cols * cell_w}" height="{rows * cell_h}" '
        f'preserveAspectRatio="none" style="image-rendering:pixelated"/>{"".join(text)}</svg>'
    )


def legend(kind: str, low: float, high: float, units: str) -> str:
    stops = (
        f"rgb{NEGATIVE}, rgb{BACKGROUND}, rgb{ACCENT}" if kind == "diverging" else f"rgb{BACKGROUND}, rgb{ACCENT}"
    )
    middle = '<span>0</span>' if kind == "diverging" else ""
    return (
        f'<div style="display:inline-flex;gap:8px;align-items:flex-start;margin-top:6px">'
        f'<div><div style="width:180px;height:10px;border:1px solid {BORDER};background:linear-gradient(to right, {stops})">'
        f'</div><div style="width:180px;display:flex;justify-content:space-between;font-size:11px">'
        f"<span>{esc(f'{low:.3g}')}</span>{middle}<span>{esc(f'{high:.3g}')}</span></div></div>"
        f'<span style="font-size:11px">{esc(units)}</span></div>'
    )


def frame(title: str, body: str, note: str = "static preview; run the notebook for the interactive widget") -> str:
    return (
        f'<div class="iw-static" style="font-family:{FONT};font-size:13px;color:{TEXT};border:1px solid {BORDER};'
        f'border-radius:4px;padding:8px 10px;max-width:100%;overflow-x:auto">'
        f'<div style="font-weight:600;margin-bottom:6px">{esc(title)}</div>{body}'
        f'<div style="color:{MUTED};font-size:11px;margin-top:6px">{esc(note)}</div></div>'
    )
