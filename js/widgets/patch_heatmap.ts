// PatchHeatmap: a patching result (layer x position, layer x head, layer x head x position, path-patching
// sweeps) as a diverging heatmap centred on 0. Click a cell: the kernel applies the `action` trait to that
// component and the widget shows the metric before/after and the first prompt's top predictions. Shift-click
// selects several cells, then one action applies them together. Every label of an action (and the run it
// acts on) comes from the `actions` trait. Python side: interpwidgets/widgets/patch_heatmap.py.

import "../lib/base.css";
import "./patch_heatmap.css";
import type { RenderProps } from "../lib/anywidget";
import { type NDArray, decodeArray } from "../lib/buffers";
import type { CanvasCell } from "../lib/canvas";
import { matrixBitmap } from "../lib/canvas";
import { codeBox } from "../lib/code";
import { cssColour, divergingScale, legend } from "../lib/colour";
import { type Child, h, select, setChildren } from "../lib/dom";
import { formatNumber } from "../lib/format";
import { MatrixView } from "../lib/matrix";
import { type Predictions, beforeAndAfter, metricChange } from "../lib/outcome";
import { Requester } from "../lib/messaging";
import { type SelectionKey, connectSelection } from "../lib/selection";
import { control, createShell } from "../lib/shell";

type Index = number[];

/** One action's texts, from Python: its menu label and the outcome panel's headings. */
interface ActionText {
  label: string;
  before: string;
  after: string;
  metric: string;
  /** The first prompt of the run acted on (its last tokens): the prompt the predictions are for. */
  prompt: string;
  /** What a click does with this action. */
  hint: string;
}

interface Traits {
  values: unknown;
  axes: string[];
  labels: string[][];
  units: string;
  title: string;
  actions: Record<string, ActionText>;
  action: string;
  max_cells: number;
}

interface Outcome {
  cells: Index[];
  action: string;
  description: string;
  metric_before: number;
  metric_after: number;
  top_before: Predictions;
  top_after: Predictions;
  /** The Python call that reproduces this outcome. */
  code: string;
}

const SELECTION_AXES: Record<string, SelectionKey> = { layer: "layer", head: "head", position: "token", pos: "token", token: "token", feature: "feature" };

/** The flat (row, col) layout: the last axis runs along columns, all earlier axes along rows. */
class Grid {
  readonly rows: number;
  readonly cols: number;
  constructor(readonly shape: number[]) {
    this.cols = shape[shape.length - 1];
    this.rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  }
  index({ row, col }: CanvasCell): Index {
    const leading: number[] = [];
    let rest = row;
    for (const size of this.shape.slice(0, -1).reverse()) {
      leading.unshift(rest % size);
      rest = Math.floor(rest / size);
    }
    return [...leading, col];
  }
  cell(index: Index): CanvasCell {
    let row = 0;
    this.shape.slice(0, -1).forEach((size, axis) => { row = row * size + index[axis]; });
    return { row, col: index[index.length - 1] };
  }
  flat(index: Index): number {
    const { row, col } = this.cell(index);
    return row * this.cols + col;
  }
}

const sameIndex = (a: Index, b: Index) => a.length === b.length && a.every((v, i) => v === b[i]);

async function render({ model, el, signal, host }: RenderProps<Traits>): Promise<void> {
  const axes = model.get("axes");
  const labels = model.get("labels");
  const units = model.get("units");
  const texts = model.get("actions");
  const shell = createShell(el, model.get("title"), "iw-patch", signal, () => draw());
  const requester = new Requester(model, shell.status, signal, shell.root);
  const selection = await connectSelection(model, host, signal);

  let values: NDArray;
  try {
    values = await decodeArray(model.get("values"));
  } catch (error) {
    shell.status.showError(`could not read the result: ${(error as Error).message}`);
    return;
  }
  const grid = new Grid(values.shape);
  const describe = (index: Index) => index.map((i, axis) => `${axes[axis]} ${labels[axis][i]}`).join(" \u00b7 ");
  const rowLabels = Array.from({ length: grid.rows }, (_, row) =>
    grid.index({ row, col: 0 }).slice(0, -1).map((i, axis) => labels[axis][i]).join(" "));
  const colLabels = labels[labels.length - 1];
  const maxCells = model.get("max_cells");

  let chosen: Index[] = [];
  let applied: Index[] = [];

  // toolbar
  const actionSelect = select(Object.entries(texts).map(([action, text]) => [action, text.label]), model.get("action"), "action");
  const applyButton = h("button", { className: "iw-button iw-apply" }, "apply to selected");
  const clearButton = h("button", { className: "iw-button iw-clear" }, "clear");
  const clickHint = h("span", { className: "iw-hint iw-click-hint" });
  shell.toolbar.append(control("On click", actionSelect), applyButton, clearButton, clickHint);
  /** The menu's current choice, said in words: what a click does now. */
  function showAction(): void {
    const action = model.get("action");
    actionSelect.value = action;
    clickHint.textContent = `${texts[action]?.hint ?? "click a cell: intervene"} \u00b7 shift-click: select several (up to ${maxCells})`;
  }
  showAction();

  const matrix = new MatrixView({
    rows: grid.rows, cols: grid.cols, rowLabels, colLabels, maxWidth: 640, maxHeight: 560, maxCell: 44, minLabelCell: 10,
  });
  const axisCaption = h("div", { className: "iw-caption" },
    `rows: ${axes.slice(0, -1).join(" \u00d7 ") || "\u2014"} \u00b7 columns: ${axes[axes.length - 1]}`);
  const outcomePanel = h("div", { className: "iw-outcome", attrs: { "aria-live": "polite" } },
    h("div", { className: "iw-hint" }, "Click a cell to intervene on that component in the kernel."));
  shell.body.append(h("div", {}, axisCaption, matrix.el), outcomePanel);

  function updateButtons(): void {
    applyButton.textContent = `apply to ${chosen.length} selected`;
    applyButton.disabled = chosen.length === 0;
    clearButton.disabled = chosen.length === 0;
  }

  function draw(): void {
    let absMax = 0;
    for (const v of values.data) if (Number.isFinite(v)) absMax = Math.max(absMax, Math.abs(v));
    const scale = divergingScale(shell.theme(), absMax, units);
    const theme = shell.theme();
    matrix.draw(matrixBitmap(values.data, grid.rows, grid.cols, scale), (ctx, cellW, cellH) => {
      const outline = (index: Index, dashed: boolean) => {
        const { row, col } = grid.cell(index);
        ctx.setLineDash(dashed ? [3, 2] : []);
        ctx.strokeRect(col * cellW + 1, row * cellH + 1, Math.max(1, cellW - 2), Math.max(1, cellH - 2));
      };
      ctx.lineWidth = 2;
      ctx.strokeStyle = cssColour(theme.foreground);
      applied.forEach((index) => outline(index, false));
      chosen.forEach((index) => outline(index, true));
      ctx.setLineDash([]);
    });
    setChildren(shell.footer, legend(scale), h("span", { className: "iw-hint" }, `each cell: the ${units} after patching it`));
    updateButtons();
  }

  function share(index: Index): void {
    const update: Partial<Record<SelectionKey, number | null>> = {};
    axes.forEach((axis, i) => {
      const key = SELECTION_AXES[axis];
      if (key) update[key] = index[i];
    });
    if (Object.keys(update).length) selection.set(update);
  }

  async function intervene(cells: Index[]): Promise<void> {
    applied = cells;
    draw();
    const shown = await requester.fetch("intervene", { cells }, { key: "intervene", decode: readOutcome });
    if (shown) setChildren(outcomePanel, ...shown);
  }

  /** The outcome panel's contents for a reply, headed with the texts of the action the kernel applied. */
  async function readOutcome(outcome: Outcome): Promise<Child[]> {
    const text = texts[outcome.action];
    if (!text) throw new RangeError(`unknown action ${outcome.action}`);
    return [
      h("div", { className: "iw-outcome-title" }, `${text.label}: ${outcome.description}`),
      metricChange(text.metric, outcome.metric_before, outcome.metric_after),
      h("div", { className: "iw-prompt" }, text.prompt),
      await beforeAndAfter([text.before, outcome.top_before], [text.after, outcome.top_after]),
      codeBox(outcome.code),
    ];
  }


  matrix.onHover((cell, event) => {
    if (!cell) return shell.tooltip.hide();
    const index = grid.index(cell);
    const value = values.data[grid.flat(index)];
    shell.tooltip.show(event, [describe(index), Number.isNaN(value) ? "not measured" : `${units}: ${formatNumber(value)}`]);
  });
  matrix.onClick((cell, event) => {
    if (!cell) return;
    const index = grid.index(cell);
    share(index);
    if (event.shiftKey) {
      const at = chosen.findIndex((other) => sameIndex(other, index));
      if (at >= 0) chosen.splice(at, 1);
      else if (chosen.length < maxCells) chosen.push(index);
      else shell.status.showError(`at most ${maxCells} cells can be selected at once`);
      draw();
      return;
    }
    void intervene([index]);
  });
  applyButton.addEventListener("click", () => {
    if (chosen.length) void intervene(chosen.slice());
  });
  clearButton.addEventListener("click", () => { chosen = []; draw(); });
  matrix.canvas.tabIndex = 0; // focusable, so Escape can clear the selection
  shell.root.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { chosen = []; draw(); }
  });
  actionSelect.addEventListener("change", () => {
    model.set("action", actionSelect.value);
    model.save_changes();
  });
  model.on("change:action", showAction);

  draw();
}

export default { render };
