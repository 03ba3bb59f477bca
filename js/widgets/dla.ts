// DirectLogitAttribution: a layer x head heatmap of each head's direct effect on a logit difference (diverging,
// centred on 0, mean over the prompts) beside one bar per component group (embeddings, each layer's attention
// and MLP, the final biases), and the check "sum of components = the model's logit difference". A click on a
// head (which also sets the shared selection) or on an MLP bar asks the kernel to ablate it: `ablate {component}`
// with the `ablation` trait, answered with the metric and the top predictions before and after.
// Python side: interpwidgets/widgets/dla.py.

import "../lib/base.css";
import "./dla.css";
import type { RenderProps } from "../lib/anywidget";
import { decodeArray } from "../lib/buffers";
import { matrixBitmap } from "../lib/canvas";
import { codeBox } from "../lib/code";
import { cssColour, divergingScale, legend } from "../lib/colour";
import { h, select, setChildren } from "../lib/dom";
import { formatNumber } from "../lib/format";
import { MatrixView } from "../lib/matrix";
import { type Predictions, beforeAndAfter, metricChange } from "../lib/outcome";
import { Requester } from "../lib/messaging";
import { connectSelection } from "../lib/selection";
import { control, createShell } from "../lib/shell";

const BAR_PX = 70;

interface Traits {
  title: string;
  direction: string;
  units: string;
  n_prompts: number;
  heads: unknown;
  head_labels: string[][];
  bars: { labels: string[]; values: unknown; ablate: string[] };
  totals: { sum: number; logit_diff: number };
  ablations: string[];
  ablation: string;
}

interface Outcome {
  component: string;
  ablation: string;
  description: string;
  metric: string;
  before_title: string;
  after_title: string;
  metric_before: number;
  metric_after: number;
  top_before: Predictions;
  top_after: Predictions;
  code: string;
}

const VERB: Record<string, string> = { zero: "zero-ablate", mean: "mean-ablate" };

async function render({ model, el, signal, host }: RenderProps<Traits>): Promise<void> {
  const units = model.get("units");
  const headLabels = model.get("head_labels");
  const bars = model.get("bars");
  const totals = model.get("totals");
  const nPrompts = model.get("n_prompts");
  const shell = createShell(el, model.get("title"), "iw-dla", signal, () => draw());
  const requester = new Requester(model, shell.status, signal, shell.root);
  const selection = await connectSelection(model, host, signal);

  let heads: Float32Array, barValues: Float32Array, nLayers: number, nHeads: number;
  try {
    const array = await decodeArray(model.get("heads"));
    [nLayers, nHeads] = array.shape;
    heads = array.data;
    barValues = (await decodeArray(bars.values)).data;
  } catch (error) {
    shell.status.showError(`could not read the result: ${(error as Error).message}`);
    return;
  }
  if (heads.length !== nLayers * nHeads || barValues.length !== bars.labels.length) {
    shell.status.showError("the result's arrays do not match its labels");
    return;
  }
  let selected: { layer: number; head: number } | null = null;
  let ablated: string | null = null;

  // toolbar: what a click does
  const ablations = model.get("ablations");
  const ablationSelect = select(ablations.map((a) => [a, VERB[a] ?? a]), model.get("ablation"), "ablation");
  shell.toolbar.append(control("On click", ablationSelect),
    h("span", { className: "iw-hint" }, "click a head or an MLP bar: ablate it in the kernel"));

  // body: heads, bars, outcome
  const matrix = new MatrixView({
    rows: nLayers, cols: nHeads,
    rowLabels: Array.from({ length: nLayers }, (_, l) => `L${l}`), colLabels: Array.from({ length: nHeads }, (_, i) => `H${i}`),
    maxWidth: 420, maxHeight: 420, maxCell: 40, minLabelCell: 10,
  });
  const meanOver = `mean over ${nPrompts} prompt${nPrompts === 1 ? "" : "s"}`;
  const headsPanel = h("div", { className: "iw-dla-heads" }, h("div", { className: "iw-caption" }, `heads (rows: layer, columns: head) \u00b7 ${meanOver}`), matrix.el);
  const barsPanel = h("div", { className: "iw-dla-bars", attrs: { role: "list" } });
  const outcomePanel = h("div", { className: "iw-outcome", attrs: { "aria-live": "polite" } },
    h("div", { className: "iw-hint" }, "Click a head or an MLP bar to ablate it in the kernel."));
  shell.body.append(headsPanel, h("div", {}, h("div", { className: "iw-caption" }, `components \u00b7 ${meanOver}`), barsPanel), outcomePanel);

  let headMax = 0;
  for (const v of heads) if (Number.isFinite(v)) headMax = Math.max(headMax, Math.abs(v));
  let barMax = 0;
  for (const v of barValues) if (Number.isFinite(v)) barMax = Math.max(barMax, Math.abs(v));
  barMax ||= 1;

  const barRows = bars.labels.map((label, i) => {
    const value = barValues[i];
    const width = (Math.abs(value) / barMax) * BAR_PX;
    const bar = h("div", { className: `iw-dla-bar ${value < 0 ? "iw-neg" : "iw-pos"}`,
      style: value < 0 ? { left: `${BAR_PX - width}px`, width: `${width}px` } : { left: `${BAR_PX}px`, width: `${width}px` } });
    const component = bars.ablate[i];
    const row = h("div", { className: `iw-dla-row${component ? " iw-clickable" : ""}`, attrs: { role: "listitem", "data-label": label } },
      h("span", { className: "iw-dla-label" }, label),
      h("div", { className: "iw-dla-track" }, h("div", { className: "iw-dla-zero" }), bar),
      h("span", { className: "iw-dla-value" }, formatNumber(value)));
    if (component) {
      row.tabIndex = 0;
      row.dataset.component = component;
      row.addEventListener("click", () => void ablate(component));
      row.addEventListener("keydown", (event) => { if (event.key === "Enter") void ablate(component); });
    }
    row.addEventListener("mousemove", (event) => shell.tooltip.show(event,
      [`${label}: ${formatNumber(value)}`, `${units} (${meanOver})`, ...(component ? [`click: ${VERB[model.get("ablation")] ?? "ablate"} ${component}`] : [])]));
    row.addEventListener("mouseleave", () => shell.tooltip.hide());
    return row;
  });
  barsPanel.append(...barRows);

  function draw(): void {
    const scale = divergingScale(shell.theme(), headMax, units);
    const theme = shell.theme();
    matrix.draw(matrixBitmap(heads, nLayers, nHeads, scale), (ctx, cellW, cellH) => {
      ctx.lineWidth = 2;
      ctx.strokeStyle = cssColour(theme.foreground);
      if (selected) ctx.strokeRect(selected.head * cellW + 1, selected.layer * cellH + 1, Math.max(1, cellW - 2), Math.max(1, cellH - 2));
    });
    for (const row of barRows) row.classList.toggle("iw-ablated", ablated !== null && row.dataset.component === ablated);
    setChildren(shell.footer, legend(scale),
      h("span", { className: "iw-dla-sum" },
        "sum of components = ", h("span", { className: "iw-sum" }, formatNumber(totals.sum)),
        " = the model's logit difference ", h("span", { className: "iw-logit-diff" }, formatNumber(totals.logit_diff)),
        ` (${meanOver})`));
  }

  async function readOutcome(outcome: Outcome): Promise<HTMLElement[]> {
    const parts: (HTMLElement | null)[] = [
      h("div", { className: "iw-outcome-title" }, `${VERB[outcome.ablation] ?? outcome.ablation}: ${outcome.description}`),
      metricChange(outcome.metric, outcome.metric_before, outcome.metric_after),
      await beforeAndAfter([outcome.before_title, outcome.top_before], [outcome.after_title, outcome.top_after]),
      codeBox(outcome.code),
    ];
    return parts.filter((part): part is HTMLElement => part !== null);
  }

  async function ablate(component: string): Promise<void> {
    ablated = component;
    draw();
    const shown = await requester.fetch("ablate", { component }, { key: "ablate", decode: readOutcome });
    if (shown) setChildren(outcomePanel, ...shown);
  }

  matrix.onHover((cell, event) => {
    if (!cell) return shell.tooltip.hide();
    const value = heads[cell.row * nHeads + cell.col];
    shell.tooltip.show(event, [`${headLabels[cell.row][cell.col]}: ${formatNumber(value)}`, `${units} (${meanOver})`]);
  });
  matrix.onClick((cell) => {
    if (!cell) return;
    selected = { layer: cell.row, head: cell.col };
    selection.set({ layer: cell.row, head: cell.col });
    void ablate(headLabels[cell.row][cell.col]);
  });
  selection.onChange(() => {
    const layer = selection.get("layer");
    const head = selection.get("head");
    const next = layer !== null && head !== null && layer < nLayers && head < nHeads ? { layer, head } : null;
    if (next?.layer === selected?.layer && next?.head === selected?.head) return;
    selected = next;
    draw();
  });
  ablationSelect.addEventListener("change", () => {
    model.set("ablation", ablationSelect.value);
    model.save_changes();
  });
  model.on("change:ablation", () => { ablationSelect.value = model.get("ablation"); });

  draw();
}

export default { render };
