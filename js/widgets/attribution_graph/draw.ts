// Drawing an attribution graph on two stacked canvases: the picture (guides, edges, nodes), redrawn when the pruning,
// the layout or the theme changes; and an overlay (the hovered node's edges, the selection, search matches, the
// selection box), redrawn on every pointer move at the cost of what it shows only. Edges are batched by sign and
// strength, one path each, so 100,000 of them cost a dozen strokes.

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

/** Line width and opacity of an edge of relative strength level (0..LEVELS-1) among `count` drawn edges. */
function edgeStyle(level: number, count: number): [number, number] {
  const s = (level + 1) / LEVELS;
  const crowd = Math.min(1, Math.sqrt(1500 / Math.max(1, count)));
  return [0.5 + 2.5 * s * s, Math.min(1, (0.12 + 0.8 * s) * Math.max(crowd, 0.15 + 0.85 * s * s))];
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

/** The picture: row guides, the shown edges (`edges`: graph edge indices), the items. */
export function drawPicture(ctx: CanvasRenderingContext2D, g: GraphData, layout: Layout, edges: Int32Array, p: Palette, font: string): void {
  ctx.clearRect(0, 0, layout.width, layout.height);
  ctx.strokeStyle = rgba(p.guide, 1);
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (const row of layout.rows) {
    ctx.moveTo(0, Math.round(row.top) + 0.5);
    ctx.lineTo(layout.width, Math.round(row.top) + 0.5);
  }
  ctx.stroke();
  // edges, by sign and strength: weak first
  const max = maxWeight(g, edges);
  const buckets: number[][] = Array.from({ length: 2 * LEVELS }, () => []);
  for (let k = 0; k < edges.length; k++) {
    const w = g.weight[edges[k]];
    const level = Math.min(LEVELS - 1, Math.floor(Math.sqrt(max > 0 ? Math.abs(w) / max : 0) * LEVELS));
    buckets[level * 2 + (w >= 0 ? 0 : 1)].push(edges[k]);
  }
  buckets.forEach((bucket, b) => {
    if (!bucket.length) return;
    const [width, alpha] = edgeStyle(Math.floor(b / 2), edges.length);
    ctx.strokeStyle = rgba(b % 2 ? p.negative : p.positive, alpha);
    ctx.lineWidth = width;
    ctx.beginPath();
    for (const e of bucket) {
      const pair = ends(layout, g, e);
      if (!pair) continue;
      ctx.moveTo(pair[0].x, pair[0].y);
      ctx.lineTo(pair[1].x, pair[1].y);
    }
    ctx.stroke();
  });
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
