// Colour scales (sequential for magnitudes, diverging centred on 0 for signed effects) and their legends.

import { h } from "./dom";
import { formatNumber } from "./format";
import { type RGB, type Theme, luminance, mix } from "./theme";

export interface ColourScale {
  kind: "sequential" | "diverging";
  min: number;
  max: number;
  units: string;
  /** 256 RGBA entries from `min` to `max`. */
  lut: Uint8ClampedArray;
  /** The LUT entry (0..255) for a value; values outside the domain clamp to its ends. */
  index(value: number): number;
}

function buildScale(kind: ColourScale["kind"], min: number, max: number, units: string, colourAt: (t: number) => RGB): ColourScale {
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const [r, g, b] = colourAt(i / 255);
    lut.set([r, g, b, 255], i * 4);
  }
  const span = max - min || 1;
  return {
    kind, min, max, units, lut,
    index: (value) => Math.max(0, Math.min(255, Math.round(((value - min) / span) * 255))),
  };
}

/** From the background colour (0) to the accent colour (`max`). */
export function sequentialScale(theme: Theme, max: number, units: string): ColourScale {
  const top = max > 0 ? max : 1;
  return buildScale("sequential", 0, top, units, (t) => mix(theme.background, theme.accent, t));
}

/** Negative colour at -m, background at 0, accent at +m, with m = max |value|. */
export function divergingScale(theme: Theme, absMax: number, units: string): ColourScale {
  const m = absMax > 0 ? absMax : 1;
  return buildScale("diverging", -m, m, units, (t) =>
    t < 0.5 ? mix(theme.negative, theme.background, t * 2) : mix(theme.background, theme.accent, (t - 0.5) * 2),
  );
}

export function colourOf(scale: ColourScale, value: number): RGB {
  const i = scale.index(value) * 4;
  return [scale.lut[i], scale.lut[i + 1], scale.lut[i + 2]];
}

export function cssColour([r, g, b]: RGB): string {
  return `rgb(${Math.round(r)}, ${Math.round(g)}, ${Math.round(b)})`;
}

/** Black or white, whichever reads better on `background`. */
export function textColourOn(background: RGB): string {
  return luminance(background) > 0.55 ? "#000" : "#fff";
}

/** A horizontal colour bar with its end (and centre) values and the units, as DOM text. */
export function legend(scale: ColourScale, width = 180): HTMLElement {
  const bar = h("canvas", { className: "iw-legend-bar" });
  bar.width = 256;
  bar.height = 1;
  bar.getContext("2d")!.putImageData(new ImageData(scale.lut.slice(), 256, 1), 0, 0);
  bar.style.width = `${width}px`;
  const ticks = h(
    "div",
    { className: "iw-legend-ticks", style: { width: `${width}px` } },
    h("span", {}, formatNumber(scale.min)),
    scale.kind === "diverging" ? h("span", {}, "0") : null,
    h("span", {}, formatNumber(scale.max)),
  );
  return h("div", { className: "iw-legend", attrs: { role: "img", "aria-label": `colour scale ${scale.min} to ${scale.max} ${scale.units}` } },
    h("div", { className: "iw-legend-scale" }, bar, ticks),
    h("span", { className: "iw-legend-units" }, scale.units),
  );
}
