// Where the shown part of an attribution graph goes: rows by layer (embeddings at the bottom, then each layer's
// attention and MLP, the logits on top), columns by token position (bias nodes, which have none, in a last column),
// the nodes of a cell side by side in lines, most influential first; a supernode drawn as one node at the centre of
// its shown members. A spatial grid answers "which item is under the pointer" without scanning every node.

import { LOGIT, TOKEN } from "../../lib/prune";
import type { GraphData } from "./wire";

export const LEFT = 64;
export const RIGHT = 12;
export const TOP = 12;
export const BOTTOM = 8;
const COL_MIN = 34;
const ROW_MIN = 40;
const ROW_PAD = 14;

/** One thing drawn: a node, or a supernode standing for its shown members. */
export interface Item {
  /** the node (local index), or -1 for a supernode */
  node: number;
  /** the supernode's name, "" for a node */
  name: string;
  /** the shown nodes it stands for */
  members: number[];
  x: number;
  y: number;
  r: number;
}

export interface Row {
  label: string;
  y: number;
  top: number;
  height: number;
}

export interface Column {
  label: string;
  token: string;
  x: number;
  width: number;
}

export interface Layout {
  items: Item[];
  /** [n] the item each shown node is drawn as (-1: not shown) */
  itemOf: Int32Array;
  /** [n] the (row, column) cell of each shown node, and the cell's centre, for edges drawn merged per cell pair */
  cellOf: Int32Array;
  cellX: Float64Array;
  cellY: Float64Array;
  width: number;
  height: number;
  rows: Row[];
  cols: Column[];
  grid: HitGrid;
}

/** Row of each node (a key that sorts bottom to top) and the rows' labels, fixed for the sent graph. */
export interface Rows {
  rowOf: Int32Array;
  keys: number[];
  labels: Map<number, string>;
}

export function rowsOf(g: GraphData): Rows {
  const top = 2 * Math.max(0, ...Array.from(g.layer)) + 4;
  const rowOf = new Int32Array(g.n);
  const labels = new Map<number, string>();
  for (let i = 0; i < g.n; i++) {
    const t = g.nodeType[i];
    let key: number;
    let label: string;
    if (t === TOKEN) [key, label] = [0, "embed"];
    else if (t === LOGIT || g.kind[i] === "logit") [key, label] = [top, "logits"];
    else {
      const attn = g.kind[i] === "attn";
      [key, label] = [1 + 2 * g.layer[i] + (attn ? 0 : 1), `${attn ? "attn" : "mlp"}${g.layer[i]}`];
    }
    rowOf[i] = key;
    labels.set(key, label);
  }
  return { rowOf, keys: [...labels.keys()].sort((a, b) => a - b), labels };
}

/** Radius of a node of `influence` when the largest shown influence is `max`, for a layout of `count` items. */
function radius(influence: number, max: number, count: number): number {
  const [low, high] = count > 1500 ? [1.2, 3.5] : count > 400 ? [1.8, 5] : [2.5, 8];
  return low + (high - low) * Math.sqrt(max > 0 ? Math.max(0, influence) / max : 0);
}

/**
 * Lays out the shown nodes (`shown[i]` = 1) in `width` CSS pixels (wider when the columns need more), with
 * `supernodes` (name -> member local indices) merged into one item each.
 */
export function layOut(g: GraphData, rows: Rows, shown: Uint8Array, supernodes: Map<string, number[]>, tokens: string[],
  width: number): Layout {
  const n = g.n;
  const nodes: number[] = [];
  for (let i = 0; i < n; i++) if (shown[i]) nodes.push(i);
  const hasBias = nodes.some((i) => g.position[i] < 0);
  const positions = new Set<number>();
  for (let p = 0; p < tokens.length; p++) positions.add(p);
  for (const i of nodes) if (g.position[i] >= 0) positions.add(g.position[i]);
  const columns = [...positions].sort((a, b) => a - b);
  if (hasBias) columns.push(-1);
  const colIndex = new Map(columns.map((p, c) => [p, c]));
  const rowIndex = new Map(rows.keys.map((key, r) => [key, r]));
  const cells = new Map<number, number[]>(); // row * nCols + col -> nodes
  const nCols = columns.length;
  for (const i of nodes) {
    const key = rowIndex.get(rows.rowOf[i])! * nCols + colIndex.get(g.position[i])!;
    if (!cells.has(key)) cells.set(key, []);
    cells.get(key)!.push(i);
  }
  const demand = new Float64Array(nCols);
  for (const [key, members] of cells) demand[key % nCols] = Math.max(demand[key % nCols], members.length);
  // column widths: a minimum each, the rest shared by sqrt(demand)
  const available = Math.max(width - LEFT - RIGHT, nCols * COL_MIN);
  const weights = Array.from(demand, (d) => Math.sqrt(d));
  const weightSum = weights.reduce((a, b) => a + b, 0) || 1;
  const spare = available - nCols * COL_MIN;
  const colWidth = weights.map((w) => COL_MIN + (spare * w) / weightSum);
  const colStart: number[] = [];
  let x = LEFT;
  for (const w of colWidth) {
    colStart.push(x);
    x += w;
  }
  // items first (sizes depend on how many there are)
  const memberOf = new Int32Array(n).fill(-1);
  const superNames = [...supernodes.keys()];
  superNames.forEach((name, s) => supernodes.get(name)!.forEach((i) => { if (shown[i] && memberOf[i] < 0) memberOf[i] = s; }));
  let maxInfluence = 0;
  for (const i of nodes) if (g.nodeType[i] !== LOGIT) maxInfluence = Math.max(maxInfluence, g.influence[i]);
  const count = nodes.length;
  const rMax = radius(maxInfluence, maxInfluence, count);
  const gap = 2 * rMax + 2;
  // lines per row: the most any cell of the row needs
  const perLine = colWidth.map((w) => Math.max(1, Math.floor((w - 6) / gap)));
  const lines = new Float64Array(rows.keys.length).fill(1);
  for (const [key, members] of cells) {
    const r = Math.floor(key / nCols);
    lines[r] = Math.max(lines[r], Math.ceil(members.length / perLine[key % nCols]));
  }
  const heights = Array.from(lines, (l) => Math.max(ROW_MIN, l * gap + ROW_PAD));
  const total = heights.reduce((a, b) => a + b, 0);
  const rowTop: number[] = [];
  let y = TOP + total;
  for (let r = 0; r < rows.keys.length; r++) { // row 0 at the bottom
    y -= heights[r];
    rowTop.push(y);
  }
  const xs = new Float64Array(n);
  const ys = new Float64Array(n);
  const cellOf = new Int32Array(n).fill(-1);
  const cellX = new Float64Array(n);
  const cellY = new Float64Array(n);
  for (const [key, members] of cells) {
    const r = Math.floor(key / nCols);
    const c = key % nCols;
    members.sort((a, b) => g.influence[b] - g.influence[a]);
    const per = perLine[c];
    const nLines = Math.ceil(members.length / per);
    const spacing = Math.min(colWidth[c] / Math.min(per, members.length), 2 * gap + 4);
    const centreY = rowTop[r] + heights[r] / 2;
    members.forEach((i, k) => {
      [cellOf[i], cellX[i], cellY[i]] = [key, colStart[c] + colWidth[c] / 2, centreY];
      const line = Math.floor(k / per);
      const inLine = Math.min(per, members.length - line * per);
      xs[i] = colStart[c] + colWidth[c] / 2 + ((k % per) - (inLine - 1) / 2) * spacing;
      ys[i] = centreY + (line - (nLines - 1) / 2) * gap;
    });
  }
  const items: Item[] = [];
  const itemOf = new Int32Array(n).fill(-1);
  for (const i of nodes) {
    if (memberOf[i] >= 0) continue;
    itemOf[i] = items.length;
    items.push({ node: i, name: "", members: [i], x: xs[i], y: ys[i], r: radius(g.influence[i], maxInfluence, count) });
  }
  superNames.forEach((name, s) => {
    const members = nodes.filter((i) => memberOf[i] === s);
    if (!members.length) return;
    const sum = members.reduce((a, i) => a + g.influence[i], 0);
    const cx = members.reduce((a, i) => a + xs[i], 0) / members.length;
    const cy = members.reduce((a, i) => a + ys[i], 0) / members.length;
    for (const i of members) itemOf[i] = items.length;
    items.push({ node: -1, name, members, x: cx, y: cy, r: Math.min(radius(sum, maxInfluence, count) + 2, 3 * rMax + 4) });
  });
  const height = TOP + total + BOTTOM;
  const layoutWidth = x + RIGHT;
  const labelOf = (p: number) => (p < 0 ? "bias" : `@${p}`);
  return {
    items, itemOf, cellOf, cellX, cellY, width: layoutWidth, height,
    rows: rows.keys.map((key, r) => ({ label: rows.labels.get(key)!, y: rowTop[r] + heights[r] / 2, top: rowTop[r], height: heights[r] })),
    cols: columns.map((p, c) => ({ label: labelOf(p), token: p >= 0 && p < tokens.length ? tokens[p] : "", x: colStart[c] + colWidth[c] / 2,
      width: colWidth[c] })),
    grid: new HitGrid(items, layoutWidth),
  };
}

const CELL = 16;

/** Items bucketed by a square grid: the item nearest a point, within its radius (plus a few pixels). */
export class HitGrid {
  private readonly buckets = new Map<number, number[]>();
  private readonly cols: number;

  constructor(private readonly items: Item[], width: number) {
    this.cols = Math.ceil(width / CELL) + 1;
    items.forEach((item, k) => {
      const reach = item.r + 3;
      for (let gx = Math.floor((item.x - reach) / CELL); gx <= Math.floor((item.x + reach) / CELL); gx++) {
        for (let gy = Math.floor((item.y - reach) / CELL); gy <= Math.floor((item.y + reach) / CELL); gy++) {
          const key = gy * this.cols + gx;
          if (!this.buckets.has(key)) this.buckets.set(key, []);
          this.buckets.get(key)!.push(k);
        }
      }
    });
  }

  /** The index of the item under (x, y), or -1. */
  at(x: number, y: number): number {
    const found = this.buckets.get(Math.floor(y / CELL) * this.cols + Math.floor(x / CELL));
    let best = -1;
    let bestDistance = Infinity;
    for (const k of found ?? []) {
      const item = this.items[k];
      const d = Math.hypot(item.x - x, item.y - y);
      if (d <= item.r + 3 && d < bestDistance) [best, bestDistance] = [k, d];
    }
    return best;
  }

  /** The items whose centres lie in the rectangle. */
  inside(x0: number, y0: number, x1: number, y1: number): number[] {
    const [left, right, top, bottom] = [Math.min(x0, x1), Math.max(x0, x1), Math.min(y0, y1), Math.max(y0, y1)];
    return this.items.flatMap((item, k) => (item.x >= left && item.x <= right && item.y >= top && item.y <= bottom ? [k] : []));
  }
}
