// DOM pieces shared by the SAE feature widgets: coloured token strips, bar lists, number inputs.

import { type ColourScale, colourOf, cssColour, textColourOn } from "../../lib/colour";
import { h } from "../../lib/dom";
import { formatNumber } from "../../lib/format";
import type { Status } from "../../lib/status";
import { tokenSpan } from "../../lib/tokens";
import type { Ranked } from "./wire";

/** Colours a token span by `value` on `scale` (NaN: uncoloured). */
export function colourSpan(span: HTMLElement, scale: ColourScale, value: number): void {
  if (Number.isNaN(value)) {
    span.style.background = "";
    span.style.color = "";
    return;
  }
  const rgb = colourOf(scale, value);
  span.style.background = cssColour(rgb);
  span.style.color = textColourOn(rgb);
}

/** A titled list of tokens with horizontal bars (|value| / `max`) and their values. */
export function barList(title: string, ranked: Ranked, max: number, className: string): HTMLElement {
  const top = max > 0 ? max : 1;
  return h("div", { className: `iw-bars ${className}` },
    h("div", { className: "iw-bars-title" }, title),
    ...ranked.tokens.map((token, i) => h("div", { className: "iw-bar-row" },
      tokenSpan(token, i),
      h("div", { className: "iw-bar-track" },
        h("div", { className: "iw-bar-fill", style: { width: `${Math.round((Math.min(Math.abs(ranked.values[i]), top) / top) * 100)}%` } })),
      h("span", { className: "iw-bar-value" }, formatNumber(ranked.values[i])))));
}

/** An <input type="number"> for integers in [min, max]. */
export function integerInput(value: number, min: number, max: number, label: string): HTMLInputElement {
  const input = h("input", { className: "iw-number", attrs: { type: "number", min: String(min), max: String(max), step: "1", "aria-label": label } });
  input.value = String(value);
  return input;
}

/** The input's value as an integer in [min, max], or null when it is not one. */
export function readInteger(input: HTMLInputElement, min: number, max: number): number | null {
  const value = Number(input.value);
  return Number.isInteger(value) && value >= min && value <= max ? value : null;
}

/** On a change of `input`: `choose(feature)` when it holds a feature index below `dSae()`; otherwise an
 * error in `status` and `current()` put back. */
export function onFeatureInput(
  input: HTMLInputElement, dSae: () => number, current: () => number, status: Status, choose: (feature: number) => void,
): void {
  input.addEventListener("change", () => {
    const next = readInteger(input, 0, dSae() - 1);
    if (next === null) {
      status.showError(`feature must be an integer from 0 to ${dSae() - 1}`);
      input.value = String(current());
      return;
    }
    choose(next);
  });
}
