/** The outcome panel's parts shared by the views whose clicks run an intervention: the metric's change and the
 *  top predictions before and after, as the kernel's reply gives them. */

import { decodeArray } from "./buffers";
import { h } from "./dom";
import { formatNumber } from "./format";
import { tokenSpan } from "./tokens";

/** Top next-token predictions: token strings and their probabilities (a float16 wire array). */
export interface Predictions {
  tokens: string[];
  probs: unknown;
}

/** "label: before → after (Δ change)", the change coloured by its sign. */
export function metricChange(label: string, before: number, after: number): HTMLElement {
  const delta = after - before;
  return h("div", { className: "iw-metric" },
    `${label}: `,
    h("span", { className: "iw-metric-before" }, formatNumber(before)),
    " \u2192 ",
    h("span", { className: "iw-metric-after" }, formatNumber(after)),
    " (\u0394 ",
    h("span", { className: delta < 0 ? "iw-delta-neg" : "iw-delta-pos" }, formatNumber(delta)),
    ")");
}

/** A titled list of predictions with a probability bar each. */
export async function predictionsTable(title: string, predictions: Predictions, className: string): Promise<HTMLElement> {
  const probs = (await decodeArray(predictions.probs)).data;
  if (probs.length !== predictions.tokens.length) throw new RangeError("top predictions and probabilities differ in length");
  return h("div", { className },
    h("div", { className: "iw-top-title" }, title),
    ...predictions.tokens.map((token, i) => h("div", { className: "iw-top-row" },
      tokenSpan(token, i),
      h("div", { className: "iw-bar-track" }, h("div", { className: "iw-bar", style: { width: `${Math.round(probs[i] * 100)}%` } })),
      h("span", { className: "iw-prob" }, formatNumber(probs[i])))));
}

/** The two prediction lists side by side. */
export async function beforeAndAfter(
  before: [string, Predictions], after: [string, Predictions],
): Promise<HTMLElement> {
  const tables = await Promise.all([
    predictionsTable(before[0], before[1], "iw-top-before"),
    predictionsTable(after[0], after[1], "iw-top-after"),
  ]);
  return h("div", { className: "iw-tops" }, ...tables);
}
