// A labelled matrix on canvas: rows x cols cells, text labels (DOM) when cells are big enough to read them,
// pointer events reported as cells.

import { type CanvasCell, cellAt, drawBitmap, sizeCanvas } from "./canvas";
import { h } from "./dom";

export interface MatrixLayout {
  rows: number;
  cols: number;
  rowLabels: string[];
  colLabels: string[];
  /** Largest drawing size in CSS pixels; large matrices are scaled down to fit. */
  maxWidth: number;
  maxHeight: number;
  /** Largest cell side in CSS pixels. */
  maxCell: number;
  /** Labels are shown when cells are at least this many CSS pixels. */
  minLabelCell?: number;
}

export type CellListener = (cell: CanvasCell | null, event: MouseEvent) => void;

/** A generous width of one character of the labels' font (11px UI font), to size the labels' box without layout. */
const CHAR_PX = 7;
/** Column labels longer than this are cut with an ellipsis (base.css's max-height). */
const MAX_COL_LABEL_PX = 80;

/** Column labels that fit across their cell run horizontally; others run upwards in a box only as tall as the
 * longest label needs (at most MAX_COL_LABEL_PX), so short labels leave no gap above the matrix. */
function colLabelStyle(labels: string[], cellW: number): { box: Partial<CSSStyleDeclaration>; span: Partial<CSSStyleDeclaration> } {
  const longest = Math.max(1, ...labels.map((label) => label.length)) * CHAR_PX;
  if (longest + 4 <= cellW) {
    return { box: { height: "auto" }, span: { writingMode: "horizontal-tb", transform: "none", textAlign: "center", lineHeight: "1.5" } };
  }
  return { box: { height: `${Math.min(MAX_COL_LABEL_PX, longest + 6)}px` }, span: {} };
}

function fit(count: number, max: number, maxCell: number): number {
  const cell = Math.min(maxCell, Math.max(1, Math.floor(max / count)));
  return Math.min(count * cell, max);
}

export class MatrixView {
  readonly el: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  readonly width: number;
  readonly height: number;
  private readonly ctx: CanvasRenderingContext2D;

  constructor(readonly layout: MatrixLayout) {
    this.width = fit(layout.cols, layout.maxWidth, layout.maxCell);
    this.height = fit(layout.rows, layout.maxHeight, layout.maxCell);
    this.canvas = h("canvas", { attrs: { role: "img", "aria-label": `${layout.rows} by ${layout.cols} matrix` } });
    this.ctx = sizeCanvas(this.canvas, this.width, this.height);
    const minLabel = layout.minLabelCell ?? 11;
    const cellW = this.width / layout.cols;
    const cellH = this.height / layout.rows;
    const colStyle = colLabelStyle(layout.colLabels, cellW);
    const colLabels = cellW >= minLabel
      ? h("div", { className: "iw-col-labels", style: { width: `${this.width}px`, ...colStyle.box } },
          ...layout.colLabels.map((label) => h("span", { style: { width: `${cellW}px`, lineHeight: `${cellW}px`, ...colStyle.span } }, label)))
      : h("div");
    const rowLabels = cellH >= minLabel
      ? h("div", { className: "iw-row-labels", style: { height: `${this.height}px` } },
          ...layout.rowLabels.map((label) => h("span", { style: { height: `${cellH}px`, lineHeight: `${cellH}px` } }, label)))
      : h("div");
    this.el = h("div", { className: "iw-matrix", style: { gridTemplateColumns: `auto ${this.width}px` } },
      h("div"), colLabels, rowLabels, this.canvas);
  }

  /** Draws a bitmap (one pixel per cell) over the whole matrix, then `overlay` in cell units. */
  draw(bitmap: HTMLCanvasElement, overlay?: (ctx: CanvasRenderingContext2D, cellW: number, cellH: number) => void): void {
    this.ctx.clearRect(0, 0, this.width, this.height);
    drawBitmap(this.ctx, bitmap, 0, 0, this.width, this.height);
    overlay?.(this.ctx, this.width / this.layout.cols, this.height / this.layout.rows);
  }

  onHover(listener: CellListener): void {
    this.canvas.addEventListener("mousemove", (event) => listener(cellAt(event, this.canvas, this.layout.rows, this.layout.cols), event));
    this.canvas.addEventListener("mouseleave", (event) => listener(null, event));
  }

  onClick(listener: CellListener): void {
    this.canvas.addEventListener("click", (event) => listener(cellAt(event, this.canvas, this.layout.rows, this.layout.cols), event));
  }
}
