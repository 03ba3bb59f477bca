// Drawing an attribution graph on two stacked canvases: the picture (guides, edges, nodes), redrawn when the pruning,
// the layout or the theme changes; and an overlay (the hovered node's edges, the selection, search matches, the
// selection box), redrawn on every pointer move at the cost of what it shows only. Edges are batched by sign and
// strength, one path each; beyond INDIVIDUAL_EDGES the weakest are merged into one line per pair of cells and the lines
// are blended into the pixels directly (RasterSink): a software rasteriser (Chromium without a GPU) takes ~40 us to
// stroke one long antialiased line, so 8,000 of them cost ~350 ms.

import { cssColour } from "../../lib/colour";
import { ERROR, FEATURE, LOGIT, TOKEN } from "../../lib/prune";
import { type RGB, type Theme, mix } from "../../lib/theme";
import type { Item, Layout } from "./layout";
import type { GraphData } from "./wire";

const LEVELS = 6;

export interface Palette {
  feature: RGB;
  error: RGB;
  token: RGB;
  bias: RGB;
  logit: RGB;
  supernode: RGB;
  positive: RGB;
  negative: RGB;
  guide: RGB;
  text: RGB;
  background: RGB;
}

export function paletteOf(theme: Theme): Palette {
  return {
    feature: theme.accent,
    error: theme.muted,
    token: mix(theme.foreground, theme.background, 0.25),
    bias: mix(theme.muted, theme.background, 0.35),
    logit: theme.background,
    supernode: mix(theme.accent, theme.foreground, 0.45),
    positive: theme.accent,
    negative: theme.negative,
    guide: mix(theme.border, theme.background, 0.5),
    text: theme.foreground,
    background: theme.background,
  };
}

function rgba([r, g, b]: RGB, alpha: number): string {
  return `rgba(${Math.round(r)}, ${Math.round(g)}, ${Math.round(b)}, ${alpha.toFixed(3)})`;
}

/** The largest |weight| among `edges` (indices into the graph's edges). */
export function maxWeight(g: GraphData, edges: Int32Array): number {
  let max = 0;
  for (let k = 0; k < edges.length; k++) max = Math.max(max, Math.abs(g.weight[edges[k]]));
  return max;
}

/** At most this many edges, the strongest, are drawn one by one; the rest merged per pair of (layer, position) cells,
 * which keeps a redraw of 100,000 edges within a frame or two on a software rasteriser. */
export const INDIVIDUAL_EDGES = 5000;

/** Line width and opacity of an edge of relative strength level (0..LEVELS-1) among `count` drawn edges. */
function edgeStyle(level: number, count: number): [number, number] {
  const s = (level + 1) / LEVELS;
  const crowd = Math.min(1, Math.sqrt(1500 / Math.max(1, count)));
  return [0.5 + 2.5 * s * s, Math.min(1, (0.12 + 0.8 * s) * Math.max(crowd, 0.15 + 0.85 * s * s))];
}

/** Where edge lines go, a bucket (one colour, opacity and width) at a time; `lines` holds x0, y0, x1, y1 per line. */
interface LineSink {
  bucket(colour: RGB, alpha: number, width: number, lines: number[]): void;
}

function canvasSink(ctx: CanvasRenderingContext2D): LineSink {
  return {
    bucket(colour, alpha, width, lines) {
      ctx.strokeStyle = rgba(colour, alpha);
      ctx.lineWidth = width;
      ctx.beginPath();
      for (let k = 0; k < lines.length; k += 4) {
        ctx.moveTo(lines[k], lines[k + 1]);
        ctx.lineTo(lines[k + 2], lines[k + 3]);
      }
      ctx.stroke();
    },
  };
}

/** Lines blended straight into the pixels of an opaque image (one or two device pixels wide, not antialiased): a
 * software rasteriser strokes a long antialiased line in ~40 us, this walks it in well under one. */
class RasterSink implements LineSink {
  readonly image: ImageData;

  constructor(width: number, height: number, private readonly ratio: number, background: RGB) {
    this.image = new ImageData(Math.max(1, width), Math.max(1, height));
    const [r, g, b] = background.map(Math.round);
    new Uint32Array(this.image.data.buffer).fill(new Uint32Array(Uint8ClampedArray.of(r, g, b, 255).buffer)[0]);
  }

  bucket(colour: RGB, alpha: number, width: number, lines: number[]): void {
    const { width: w, height: h } = this.image;
    const d = new Uint8Array(this.image.data.buffer); // blending two bytes stays a byte: no clamping needed
    const [r, g, b] = colour.map(Math.round);
    const a = Math.max(1, Math.round(alpha * 256));
    const thick = width * this.ratio > 1.5;
    const clampX = (v: number) => Math.min(w - 1, Math.max(0, v * this.ratio));
    const clampY = (v: number) => Math.min(h - 1, Math.max(0, v * this.ratio));
    for (let k = 0; k < lines.length; k += 4) {
      // endpoints clamped into the image, then walked in 16.16 fixed point: no bounds check per pixel
      const x0 = clampX(lines[k]);
      const y0 = clampY(lines[k + 1]);
      const dx = clampX(lines[k + 2]) - x0;
      const dy = clampY(lines[k + 3]) - y0;
      const steps = Math.max(1, Math.ceil(Math.max(Math.abs(dx), Math.abs(dy))));
      const sx = Math.round((dx / steps) * 65536);
      const sy = Math.round((dy / steps) * 65536);
      const sideways = Math.abs(dx) > Math.abs(dy) ? (y0 + 1 < h ? w : 0) : (x0 + 1 < w ? 1 : 0);
      let x = Math.round(x0 * 65536);
      let y = Math.round(y0 * 65536);
      for (let i = 0; i <= steps; i++, x += sx, y += sy) {
        const at = ((y >> 16) * w + (x >> 16)) << 2;
        d[at] += ((r - d[at]) * a) >> 8;
        d[at + 1] += ((g - d[at + 1]) * a) >> 8;
        d[at + 2] += ((b - d[at + 2]) * a) >> 8;
        if (thick) {
          const next = at + (sideways << 2);
          d[next] += ((r - d[next]) * a) >> 8;
          d[next + 1] += ((g - d[next + 1]) * a) >> 8;
          d[next + 2] += ((b - d[next + 2]) * a) >> 8;
        }
      }
    }
  }
}

/** The |weight| from which an edge is drawn on its own: the INDIVIDUAL_EDGES-th largest (0 when fewer are shown). */
function individualCut(g: GraphData, edges: Int32Array): number {
  if (edges.length <= INDIVIDUAL_EDGES) return 0;
  const sizes = new Float32Array(edges.length);
  for (let k = 0; k < edges.length; k++) sizes[k] = Math.abs(g.weight[edges[k]]);
  sizes.sort();
  return sizes[sizes.length - INDIVIDUAL_EDGES];
}

/** The weaker edges as one line per (source cell, target cell, sign), its opacity by their summed |weight|. */
function drawMerged(sink: LineSink, g: GraphData, layout: Layout, edges: number[], p: Palette): void {
  const sums = new Map<number, [number, number, number, number, number]>(); // key -> x0, y0, x1, y1, signed sum
  const nCells = 1 << 20;
  for (const e of edges) {
    const [a, b] = [g.src[e], g.dst[e]];
    const key = (layout.cellOf[a] * nCells + layout.cellOf[b]) * 2 + (g.weight[e] >= 0 ? 0 : 1);
    const entry = sums.get(key);
    if (entry) entry[4] += Math.abs(g.weight[e]);
    else sums.set(key, [layout.cellX[a], layout.cellY[a], layout.cellX[b], layout.cellY[b], Math.abs(g.weight[e])]);
  }
  let max = 0;
  for (const entry of sums.values()) max = Math.max(max, entry[4]);
  const buckets: number[][] = Array.from({ length: 2 * LEVELS }, () => []);
  for (const [key, [x0, y0, x1, y1, sum]] of sums) {
    const level = Math.min(LEVELS - 1, Math.floor(Math.sqrt(max > 0 ? sum / max : 0) * LEVELS));
    buckets[level * 2 + (key % 2)].push(x0, y0, x1, y1);
  }
  buckets.forEach((lines, b) => {
    const s = (Math.floor(b / 2) + 1) / LEVELS;
    if (lines.length) sink.bucket(b % 2 ? p.negative : p.positive, 0.05 + 0.35 * s, 0.75 + 0.75 * s, lines);
  });
}

function shape(ctx: CanvasRenderingContext2D, type: number, x: number, y: number, r: number): void {
  if (type === FEATURE) {
    ctx.moveTo(x + r, y);
    ctx.arc(x, y, r, 0, 2 * Math.PI);
  } else if (type === TOKEN) {
    ctx.moveTo(x, y - r * 1.2);
    ctx.lineTo(x + r * 1.2, y);
    ctx.lineTo(x, y + r * 1.2);
    ctx.lineTo(x - r * 1.2, y);
    ctx.closePath();
  } else {
    ctx.rect(x - r, y - r, 2 * r, 2 * r);
  }
}

function typeColour(p: Palette, type: number): RGB {
  return type === FEATURE ? p.feature : type === ERROR ? p.error : type === TOKEN ? p.token : type === LOGIT ? p.logit : p.bias;
}

/** Edge endpoints as items: [from item, to item] or null when both ends are the same item (inside a supernode). */
function ends(layout: Layout, g: GraphData, e: number): [Item, Item] | null {
  const a = layout.itemOf[g.src[e]];
  const b = layout.itemOf[g.dst[e]];
  if (a < 0 || b < 0 || a === b) return null;
  return [layout.items[a], layout.items[b]];
}

/** The picture: row guides, the shown edges (`edges`: graph edge indices), the items; returns how many edges were
 * drawn merged per cell pair. */
export function drawPicture(ctx: CanvasRenderingContext2D, g: GraphData, layout: Layout, edges: Int32Array, p: Palette, font: string): number {
  ctx.clearRect(0, 0, layout.width, layout.height);
  const guides = () => {
    ctx.strokeStyle = rgba(p.guide, 1);
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const row of layout.rows) {
      ctx.moveTo(0, Math.round(row.top) + 0.5);
      ctx.lineTo(layout.width, Math.round(row.top) + 0.5);
    }
    ctx.stroke();
  };
  // edges, by sign and strength: weak first; when there are many, the weakest merged per cell pair and all of them
  // blended into pixels
  const ratio = window.devicePixelRatio || 1;
  const raster = edges.length > INDIVIDUAL_EDGES
    ? new RasterSink(Math.round(layout.width * ratio), Math.round(layout.height * ratio), ratio, p.background) : null;
  const sink = raster ?? canvasSink(ctx);
  if (!raster) guides();
  const max = maxWeight(g, edges);
  const cut = individualCut(g, edges);
  const merged: number[] = [];
  const buckets: number[][] = Array.from({ length: 2 * LEVELS }, () => []);
  for (let k = 0; k < edges.length; k++) {
    const e = edges[k];
    const w = g.weight[e];
    if (Math.abs(w) < cut && layout.itemOf[g.src[e]] >= 0 && layout.items[layout.itemOf[g.src[e]]].node >= 0
      && layout.items[layout.itemOf[g.dst[e]]].node >= 0) {
      merged.push(e);
      continue;
    }
    const level = Math.min(LEVELS - 1, Math.floor(Math.sqrt(max > 0 ? Math.abs(w) / max : 0) * LEVELS));
    buckets[level * 2 + (w >= 0 ? 0 : 1)].push(e);
  }
  if (merged.length) drawMerged(sink, g, layout, merged, p);
  const drawn = edges.length - merged.length;
  buckets.forEach((bucket, b) => {
    const lines: number[] = [];
    for (const e of bucket) {
      const pair = ends(layout, g, e);
      if (pair) lines.push(pair[0].x, pair[0].y, pair[1].x, pair[1].y);
    }
    const [width, alpha] = edgeStyle(Math.floor(b / 2), drawn);
    if (lines.length) sink.bucket(b % 2 ? p.negative : p.positive, alpha, width, lines);
  });
  if (raster) {
    ctx.putImageData(raster.image, 0, 0);
    guides();
  }
  // nodes, one path per type
  const byType = new Map<number, Item[]>();
  const supernodes: Item[] = [];
  for (const item of layout.items) {
    if (item.node < 0) {
      supernodes.push(item);
      continue;
    }
    const type = g.nodeType[item.node];
    if (!byType.has(type)) byType.set(type, []);
    byType.get(type)!.push(item);
  }
  ctx.lineWidth = layout.items.length > 1500 ? 0.5 : 1;
  ctx.strokeStyle = rgba(p.text, 0.55);
  for (const [type, items] of byType) {
    ctx.fillStyle = cssColour(typeColour(p, type));
    ctx.beginPath();
    for (const item of items) shape(ctx, type, item.x, item.y, type === LOGIT ? Math.max(item.r, 7) : item.r);
    ctx.fill();
    if (type === LOGIT) {
      ctx.save();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = cssColour(p.text);
      ctx.stroke();
      ctx.restore();
    } else ctx.stroke();
  }
  ctx.font = font;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const item of supernodes) {
    ctx.fillStyle = cssColour(p.supernode);
    ctx.beginPath();
    shape(ctx, FEATURE, item.x, item.y, item.r);
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = cssColour(p.text);
    ctx.stroke();
    ctx.fillStyle = cssColour(p.text);
    ctx.fillText(item.name, item.x, item.y + item.r + 3);
  }
  for (const item of layout.items) {
    if (item.node < 0 || g.nodeType[item.node] !== LOGIT) continue;
    ctx.fillStyle = cssColour(p.text);
    ctx.textBaseline = "bottom";
    ctx.fillText(g.labels[item.node].replace(/^logit /, ""), item.x, item.y - Math.max(item.r, 7) - 3);
  }
  return merged.length;
}

export interface Marks {
  hover: number;
  /** the hovered item's edges (graph edge indices) */
  hoverEdges: number[];
  selected: Set<number>;
  matches: Set<number>;
  /** the item the last intervention set */
  intervened: number;
  box: [number, number, number, number] | null;
}

function ring(ctx: CanvasRenderingContext2D, item: Item, gap: number): void {
  ctx.moveTo(item.x + item.r + gap, item.y);
  ctx.arc(item.x, item.y, item.r + gap, 0, 2 * Math.PI);
}

/** The overlay: what the pointer and the tools mark, over the picture. */
export function drawMarks(ctx: CanvasRenderingContext2D, g: GraphData, layout: Layout, marks: Marks, p: Palette): void {
  ctx.clearRect(0, 0, layout.width, layout.height);
  if (marks.hover >= 0) {
    const max = Math.max(1e-30, ...marks.hoverEdges.map((e) => Math.abs(g.weight[e])));
    for (const sign of [1, -1]) {
      ctx.strokeStyle = rgba(sign > 0 ? p.positive : p.negative, 0.9);
      for (const e of marks.hoverEdges) {
        if (Math.sign(g.weight[e] || 1) !== sign) continue;
        const pair = ends(layout, g, e);
        if (!pair) continue;
        ctx.lineWidth = 0.75 + 2.75 * Math.abs(g.weight[e]) / max;
        ctx.beginPath();
        ctx.moveTo(pair[0].x, pair[0].y);
        ctx.lineTo(pair[1].x, pair[1].y);
        ctx.stroke();
      }
    }
  }
  const strokeRings = (indices: Iterable<number>, colour: string, width: number, gap: number, dash: number[]) => {
    ctx.beginPath();
    for (const k of indices) if (layout.items[k]) ring(ctx, layout.items[k], gap);
    ctx.setLineDash(dash);
    ctx.lineWidth = width;
    ctx.strokeStyle = colour;
    ctx.stroke();
    ctx.setLineDash([]);
  };
  strokeRings(marks.matches, rgba(p.text, 0.9), 1.5, 3, [3, 2]);
  strokeRings(marks.selected, rgba(p.positive, 1), 2.5, 2, []);
  if (marks.intervened >= 0) strokeRings([marks.intervened], rgba(p.negative, 1), 2, 5, [4, 3]);
  if (marks.hover >= 0) strokeRings([marks.hover], rgba(p.text, 1), 2, 1.5, []);
  if (marks.box) {
    const [x0, y0, x1, y1] = marks.box;
    ctx.fillStyle = rgba(p.positive, 0.08);
    ctx.strokeStyle = rgba(p.positive, 0.8);
    ctx.lineWidth = 1;
    ctx.fillRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
  }
}
