// DOM pieces shared by the SAE feature widgets: coloured token strips, bar lists, number inputs.

import { type ColourScale, colourOf, cssColour, textColourOn } from "../../lib/colour";
import { h } from "../../lib/dom";
import { formatNumber } from "../../lib/format";
import { ownKeys } from "../../lib/prompt";
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

/** A feature's label ("clerp", made by iw.sae.label_features) as a muted span, or "" when it has none. */
export function clerpSpan(label: string | null | undefined): HTMLElement | string {
  return label ? h("span", { className: "iw-clerp", title: `label: ${label}` }, label) : "";
}

/** `text` followed by the feature's label when it has one (for tooltips and titles, which take plain text). */
export function withClerp(text: string, label: string | null | undefined): string {
  return label ? `${text} ${label}` : text;
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

/** Commits `input` on Enter, on change and on blur: `choose(feature)` when it holds a feature index below `dSae()`;
 * otherwise an error in `status` and `current()` put back. Enter goes no further than the box (JupyterLab's
 * notebook shortcuts would take it), and after a commit or a refusal the box shows what the view shows. */
export function onFeatureInput(
  input: HTMLInputElement, dSae: () => number, current: () => number, status: Status, choose: (feature: number) => void,
): void {
  const commit = () => {
    if (input.value === String(current())) return;
    const next = readInteger(input, 0, dSae() - 1);
    if (next === null) {
      status.showError(`feature must be an integer from 0 to ${dSae() - 1}, got \u201c${input.value}\u201d`);
      input.value = String(current());
      return;
    }
    choose(next);
    input.value = String(current());
  };
  ownKeys(input, commit);
  input.addEventListener("change", commit);
  input.addEventListener("blur", commit);
}

/** How often a feature fires, as the kernel measured it (interpwidgets/widgets/density.py). */
export interface Firing {
  over: "corpus" | "prompt";
  fraction: number;
  active: number;
  n_tokens: number;
  dense: boolean;
}

/** "fires on 44% of 16384 corpus tokens" / "fires on 9 of 14 tokens of this prompt". */
export function firingText(firing: Firing): string {
  return firing.over === "corpus"
    ? `fires on ${formatPercent(firing.fraction)} of ${firing.n_tokens} corpus tokens`
    : `fires on ${firing.active} of ${firing.n_tokens} tokens of this prompt`;
}

function formatPercent(fraction: number): string {
  const percent = fraction * 100;
  return `${percent >= 10 ? Math.round(percent) : formatNumber(percent)}%`;
}

/** A "dense" badge for a feature that fires on many tokens (null when it does not): what was measured in its text,
 * the threshold in its tooltip. */
export function denseBadge(firing: Firing | null | undefined, short = false): HTMLElement | null {
  if (!firing?.dense) return null;
  const text = firing.over === "corpus" ? `dense: fires on ${formatPercent(firing.fraction)} of tokens`
    : `dense on this prompt: fires on ${firing.active} of ${firing.n_tokens} tokens`;
  const rule = firing.over === "corpus" ? "more than 10% of the corpus's tokens" : "more than 30% of this prompt's tokens (no corpus statistics given)";
  return h("span", { className: "iw-dense", title: `${firingText(firing)}: dense (${rule}); its activations say little about any one token` },
    short ? "dense" : text);
}
