// FeatureDashboard: one SAE feature over a corpus: top-activating examples (context windows coloured by the
// activation), the activation histogram, density, and the tokens its decoder direction promotes and
// suppresses through the unembedding. Step with prev / next or jump to a feature; follows the shared
// selection's feature. The dictionary and feature are traits written here; the "feature" request is a verb
// the kernel answers from them. Python side: interpwidgets/widgets/feature_dashboard.py.

import "../lib/base.css";
import "./features/features.css";
import "./feature_dashboard.css";
import type { RenderProps } from "../lib/anywidget";
import { sizeCanvas } from "../lib/canvas";
import { codeBox } from "../lib/code";
import { type ColourScale, cssColour, legend, sequentialScale } from "../lib/colour";
import { h, select, setChildren } from "../lib/dom";
import { formatNumber, quoteToken } from "../lib/format";
import { Requester } from "../lib/messaging";
import { connectSelection } from "../lib/selection";
import { control, createShell } from "../lib/shell";
import { tokenFromEvent, tokenSpan } from "../lib/tokens";
import { decodeInt32 } from "../lib/buffers";
import { type Firing, barList, clerpSpan, colourSpan, denseBadge, integerInput, onFeatureInput } from "./features/views";
import { type DictionaryTraits, type Ranked, decodeFloats, decodeRanked } from "./features/wire";

const HIST_W = 280;
const HIST_H = 90;

interface Traits extends DictionaryTraits {
  hook: string;
  feature: number;
  follow_selection: boolean;
}

interface Summary {
  hook: string;
  feature: number;
  label: string | null;
  density: number;
  firing: Firing;
  nTokens: number;
  max: number;
  examples: { tokens: string[][]; values: Float32Array; width: number; peaks: Int32Array };
  histogram: Float32Array;
  logits: { top: Ranked; bottom: Ranked } | null;
  code: string;
}

async function decodeSummary(result: Record<string, unknown>): Promise<Summary> {
  const examples = result.examples as Record<string, unknown>;
  const tokens = examples.tokens as string[][];
  if (!Array.isArray(tokens) || !tokens.every((row) => Array.isArray(row) && row.every((t) => typeof t === "string"))) {
    throw new TypeError("malformed example tokens");
  }
  const width = tokens.reduce((m, row) => Math.max(m, row.length), 0);
  const values = await decodeFloats(examples.values, tokens.length * width);
  const peaks = decodeInt32(examples.peaks).data;
  if (peaks.length !== tokens.length) throw new RangeError("one peak per example expected");
  const raw = result.logits as Record<string, unknown> | null;
  const logits = raw ? { top: await decodeRanked(raw.top, "values"), bottom: await decodeRanked(raw.bottom, "values") } : null;
  return {
    hook: String(result.hook), feature: Number(result.feature), label: typeof result.label === "string" ? result.label : null,
    density: Number(result.density), firing: result.firing as Firing,
    nTokens: Number(result.n_tokens), max: Number(result.max), examples: { tokens, values, width, peaks },
    histogram: await decodeFloats(result.histogram), logits, code: String(result.code ?? ""),
  };
}

async function render({ model, el, signal, host }: RenderProps<Traits>): Promise<void> {
  const hooks = model.get("hooks");
  const labels = model.get("labels");
  const sizes = model.get("sizes");
  const shell = createShell(el, "Feature dashboard", "iw-dashboard", signal, () => draw());
  const requester = new Requester(model, shell.status, signal, shell.root);
  const selection = await connectSelection(model, host, signal);

  let hook = model.get("hook");
  let feature = model.get("feature");
  let summary: Summary | null = null;
  const dSae = () => sizes[hooks.indexOf(hook)];
  const nameOf = () => `${labels[hooks.indexOf(hook)]}/${feature}`;

  // ---- toolbar
  const hookSelect = select(hooks.map((name, i) => [name, labels[i]]), hook, "dictionary");
  const prevButton = h("button", { className: "iw-button iw-prev", attrs: { "aria-label": "previous feature" } }, "\u25c0 prev");
  const featureInput = integerInput(feature, 0, dSae() - 1, "feature");
  const nextButton = h("button", { className: "iw-button iw-next", attrs: { "aria-label": "next feature" } }, "next \u25b6");
  const follow = h("input", { className: "iw-follow", attrs: { type: "checkbox", "aria-label": "follow the selection" } });
  follow.checked = model.get("follow_selection");
  if (hooks.length > 1) shell.toolbar.append(control("SAE", hookSelect));
  shell.toolbar.append(prevButton, control("Feature", featureInput), nextButton, control("follow selection", follow));

  const header = h("div", { className: "iw-dash-header" });
  const examplesBox = h("div", { className: "iw-examples iw-tokens" });
  const histogram = h("canvas", { className: "iw-histogram", attrs: { role: "img", "aria-label": "activation histogram" } });
  const histogramCaption = h("div", { className: "iw-hint" });
  const logitsBox = h("div", { className: "iw-logits" });
  const codeSlot = h("div", { className: "iw-code-slot" });
  shell.body.append(
    h("div", { className: "iw-dash-main" }, header, h("div", { className: "iw-section-title" }, "Top activations"), examplesBox, codeSlot),
    h("div", { className: "iw-dash-side" },
      h("div", { className: "iw-section-title" }, "Activation histogram (active tokens)"), histogram, histogramCaption,
      h("div", { className: "iw-section-title" }, "Logit effects (W_dec \u00b7 W_U)"), logitsBox));

  function updateControls(): void {
    hookSelect.value = hook;
    featureInput.max = String(dSae() - 1);
    featureInput.value = String(feature);
    prevButton.disabled = feature <= 0;
    nextButton.disabled = feature >= dSae() - 1;
  }

  // ---- drawing
  function draw(): void {
    updateControls();
    if (!summary || summary.hook !== hook || summary.feature !== feature) {
      setChildren(header, `feature ${nameOf()}: loading\u2026`);
      return;
    }
    const data = summary;
    const scale = sequentialScale(shell.theme(), data.max, `activation of ${nameOf()}`);
    setChildren(header,
      h("span", { className: "iw-dash-title" }, `Feature ${feature}`), ` \u00b7 ${labels[hooks.indexOf(hook)]} `, clerpSpan(data.label), " \u00b7 ",
      h("span", { className: "iw-density" }, `density ${formatNumber(data.density * 100)}%`),
      ` of ${data.nTokens} tokens \u00b7 max `, h("span", { className: "iw-max" }, formatNumber(data.max)), denseBadge(data.firing) ?? "");
    drawExamples(data, scale);
    drawHistogram(data);
    setChildren(logitsBox, data.logits
      ? h("div", { className: "iw-logit-columns" },
          barList("promoted", data.logits.top, Math.max(...data.logits.top.values.map(Math.abs)), "iw-promoted"),
          barList("suppressed", data.logits.bottom, Math.max(...data.logits.bottom.values.map(Math.abs)), "iw-suppressed"))
      : h("div", { className: "iw-hint" }, "this dictionary does not write the residual stream's width"));
    setChildren(shell.footer, legend(scale), h("span", { className: "iw-hint" }, "hover a token or a bar for values"));
  }

  function drawExamples(data: Summary, scale: ColourScale): void {
    const { tokens, values, width, peaks } = data.examples;
    if (!tokens.length) {
      setChildren(examplesBox, h("div", { className: "iw-hint" }, "never active on the corpus"));
      return;
    }
    setChildren(examplesBox, ...tokens.map((row, r) => {
      const spans = row.map((token, i) => {
        const span = tokenSpan(token, i);
        colourSpan(span, scale, values[r * width + i]);
        span.classList.toggle("iw-peak", i === peaks[r]);
        return span;
      });
      const line = h("div", { className: "iw-example", attrs: { "data-example": String(r) } },
        h("span", { className: "iw-example-max" }, formatNumber(values[r * width + peaks[r]])), ...spans);
      return line;
    }));
  }

  function drawHistogram(data: Summary): void {
    const counts = data.histogram;
    const bins = counts.length;
    const theme = shell.theme();
    const ctx = sizeCanvas(histogram, HIST_W, HIST_H);
    const top = Math.max(1, ...counts);
    ctx.clearRect(0, 0, HIST_W, HIST_H);
    ctx.fillStyle = cssColour(theme.accent);
    const barW = HIST_W / bins;
    counts.forEach((count, i) => {
      const height = (count / top) * (HIST_H - 2);
      ctx.fillRect(i * barW + 0.5, HIST_H - height, Math.max(1, barW - 1), height);
    });
    ctx.strokeStyle = cssColour(theme.border);
    ctx.beginPath();
    ctx.moveTo(0, HIST_H - 0.5);
    ctx.lineTo(HIST_W, HIST_H - 0.5);
    ctx.stroke();
    const active = counts.reduce((a, b) => a + b, 0);
    setChildren(histogramCaption, `0 \u2026 ${formatNumber(data.max)} in ${bins} bins \u00b7 ${Math.round(active)} active tokens`);
  }

  // ---- kernel requests (a verb: the kernel reads hook and feature from the traits)
  async function load(): Promise<void> {
    draw();
    const data = await requester.fetch("feature", {}, { key: "feature", decode: decodeSummary });
    if (!data || data.hook !== hook || data.feature !== feature) return;
    summary = data;
    setChildren(codeSlot, codeBox(data.code));
    draw();
  }

  /** Shows a feature; `save` writes it to the model (the kernel), `share` to the shared selection. */
  function show(nextHook: string, nextFeature: number, save: boolean, share = false): void {
    if (nextHook === hook && nextFeature === feature) return;
    hook = nextHook;
    feature = Math.min(nextFeature, dSae() - 1);
    if (save) {
      model.set("hook", hook);
      model.set("feature", feature);
      model.save_changes();
    }
    if (share) selection.set({ feature });
    void load();
  }

  // ---- events
  examplesBox.addEventListener("mouseover", (event) => {
    const hit = tokenFromEvent(event, examplesBox);
    const line = hit?.span.closest<HTMLElement>(".iw-example");
    if (!hit || !line || !summary) return;
    const r = Number(line.dataset.example);
    const value = summary.examples.values[r * summary.examples.width + hit.index];
    shell.tooltip.show(event as MouseEvent, [
      quoteToken(summary.examples.tokens[r][hit.index], hit.index),
      `activation: ${formatNumber(value)}${hit.index === summary.examples.peaks[r] ? " (peak)" : ""}`,
    ]);
  });
  examplesBox.addEventListener("mouseleave", () => shell.tooltip.hide());
  histogram.addEventListener("mousemove", (event) => {
    if (!summary) return;
    const rect = histogram.getBoundingClientRect();
    const bins = summary.histogram.length;
    const bin = Math.floor(((event.clientX - rect.left) / rect.width) * bins);
    if (bin < 0 || bin >= bins) return shell.tooltip.hide();
    const width = summary.max / bins;
    shell.tooltip.show(event, [
      `activation ${formatNumber(bin * width)} \u2026 ${formatNumber((bin + 1) * width)}`,
      `tokens: ${Math.round(summary.histogram[bin])}`,
    ]);
  });
  histogram.addEventListener("mouseleave", () => shell.tooltip.hide());
  prevButton.addEventListener("click", () => show(hook, Math.max(0, feature - 1), true, true));
  nextButton.addEventListener("click", () => show(hook, Math.min(dSae() - 1, feature + 1), true, true));
  onFeatureInput(featureInput, dSae, () => feature, shell.status, (next) => show(hook, next, true, true));
  hookSelect.addEventListener("change", () => show(hookSelect.value, feature, true));
  follow.addEventListener("change", () => {
    model.set("follow_selection", follow.checked);
    model.save_changes();
  });
  const adopt = () => show(model.get("hook"), model.get("feature"), false);
  model.on("change:hook", adopt);
  model.on("change:feature", adopt);
  model.on("change:follow_selection", () => { follow.checked = model.get("follow_selection"); });
  selection.onChange(() => {
    const next = selection.get("feature");
    if (follow.checked && next !== null && next < dSae()) show(hook, next, true);
  });

  void load();
}

export default { render };
