// CircuitGraph: a feature circuit laid out by layer (rows, embeddings at the bottom, the metric on top) and
// token position (columns, with their tokens); node colour by support for the metric (the `colours` trait: sign *
// effect) and size by |effect|, edge width by |weight| and colour by the same sign.
// Hover for details; click a node to ablate it in the kernel (metric before -> after) or to open its
// feature in a linked dashboard. The kind order, the menus' choices and their labels come from Python (read-only
// traits); the menus write the `action` and `ablation` traits. Python side: interpwidgets/widgets/circuit_graph.py.

import "../lib/base.css";
import "./features/features.css";
import "./circuit_graph.css";
import type { RenderProps } from "../lib/anywidget";
import { codeBox } from "../lib/code";
import { type ColourScale, colourOf, cssColour, divergingScale, legend } from "../lib/colour";
import { h, select, setChildren } from "../lib/dom";
import { formatNumber } from "../lib/format";
import { Requester } from "../lib/messaging";
import { metricChange } from "../lib/outcome";
import { connectSelection } from "../lib/selection";
import { control, createShell } from "../lib/shell";
import { decodeInt32 } from "../lib/buffers";
import { clerpSpan } from "./features/views";
import { decodeFloats } from "./features/wire";

const SVG = "http://www.w3.org/2000/svg";
const ROW_H = 58;
const NODE_GAP = 32;
const COL_MIN = 40;
const LEFT = 88;
const TOP = 16;
const BOTTOM = 44;
/** Generous character widths of the node labels (9px) and the column labels (11px), to space them without layout. */
const LABEL_CHAR = 6;
const COL_CHAR = 7.5;

interface Traits {
  nodes: Record<string, unknown>;
  edges: Record<string, unknown>;
  title: string;
  /** click action -> its menu entry */
  actions: Record<string, string>;
  action: string;
  /** ablation choice -> its menu entry */
  ablations: Record<string, string>;
  ablation: string;
  /** node kind -> its drawing order inside a layer */
  kind_order: Record<string, number>;
  /** support = sign * effect (what the colours show) and the legend's words for its two ends */
  colours: { sign: number; supports: string; opposes: string; units: string };
  /** position -> its token on the first prompt (quoted); empty when unknown */
  tokens: string[];
  selection: string;
}

interface Ablated {
  label: string;
  clerp: string;
  ablation: string;
  metric_before: number;
  metric_after: number;
  code: string;
}

interface Opened {
  label: string;
  clerp: string;
  hook: string;
  feature: number;
  code?: string;
}

interface Nodes {
  ids: string[];
  labels: string[];
  /** Feature labels made by iw.sae.label_features ("" where none). */
  clerps: string[];
  kinds: string[];
  places: string[];
  names: string[];
  layer: Int32Array;
  position: Int32Array;
  feature: Int32Array;
  effect: Float32Array;
  activation: Float32Array;
}

interface Edges {
  src: Int32Array;
  dst: Int32Array;
  weight: Float32Array;
}

async function decodeNodes(raw: Record<string, unknown>): Promise<Nodes> {
  const strings = (key: string) => {
    const value = raw[key];
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) throw new TypeError(`nodes lack ${key}`);
    return value as string[];
  };
  const ids = strings("ids");
  const n = ids.length;
  const ints = (key: string) => {
    const array = decodeInt32(raw[key]).data;
    if (array.length !== n) throw new RangeError(`nodes.${key} has ${array.length} entries for ${n} nodes`);
    return array;
  };
  return {
    ids, labels: strings("labels"), clerps: strings("clerps"), kinds: strings("kinds"), places: strings("places"), names: strings("features"),
    layer: ints("layer"), position: ints("position"), feature: ints("feature"),
    effect: await decodeFloats(raw.effect, n), activation: await decodeFloats(raw.activation, n),
  };
}

async function decodeEdges(raw: Record<string, unknown>, n: number): Promise<Edges> {
  const src = decodeInt32(raw.src).data;
  const dst = decodeInt32(raw.dst).data;
  const weight = await decodeFloats(raw.weight, src.length);
  if (dst.length !== src.length) throw new RangeError("edge endpoints differ in length");
  if ([...src, ...dst].some((i) => i < 0 || i >= n)) throw new RangeError("an edge names a node outside the circuit");
  return { src, dst, weight };
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

interface Layout {
  x: Float64Array;
  y: Float64Array;
  width: number;
  height: number;
  rows: { label: string; y: number }[];
  cols: { label: string; token: string; x: number }[];
}

/** The short text under a node: "#153" for a feature, "error", "embed", "bias"; none for the metric. */
function shortName(nodes: Nodes, i: number): string {
  if (nodes.feature[i] >= 0) return `#${nodes.feature[i]}`;
  if (nodes.kinds[i] === "metric") return "";
  return nodes.names[i] || (nodes.kinds[i] === "resid_pre" || nodes.kinds[i] === "embed" ? "embed" : nodes.kinds[i]);
}

/** Rows: (layer, component in `kindOrder`) from the bottom; columns: the positions that hold nodes (summed nodes
 * last, "all pos.", only when there are some), each labelled with its token when `tokens` has it; nodes side by
 * side in a cell, spaced so that their labels never overlap; the metric alone on top, centred over the columns.
 * A row is labelled with its place ("resid_post2", "attn1", "embed", "metric"). */
function layOut(nodes: Nodes, kindOrder: Record<string, number>, tokens: string[]): Layout {
  const n = nodes.ids.length;
  const isMetric = (i: number) => nodes.kinds[i] === "metric";
  const rowKey = (i: number) => nodes.layer[i] * 10 + (kindOrder[nodes.kinds[i]] ?? 9);
  const rowKeys = [...new Set(Array.from({ length: n }, (_, i) => rowKey(i)))].sort((a, b) => a - b);
  const placed = Array.from({ length: n }, (_, i) => i).filter((i) => !isMetric(i));
  const positions = [...new Set(placed.map((i) => nodes.position[i]))].sort((a, b) => (a < 0 ? 1 : b < 0 ? -1 : a - b));
  const cells = new Map<string, number[]>();
  for (const i of placed) {
    const key = `${rowKey(i)}/${nodes.position[i]}`;
    if (!cells.has(key)) cells.set(key, []);
    cells.get(key)!.push(i);
  }
  const tokenOf = (p: number) => (p >= 0 && p < tokens.length ? tokens[p] : "");
  const labelOf = (p: number) => (p < 0 ? "all pos." : `@${p}`);
  const colWidth = new Map<number, number>(positions.map((p) =>
    [p, Math.max(COL_MIN, COL_CHAR * Math.max(labelOf(p).length, tokenOf(p).length) + 10)]));
  const gapOf = new Map<string, number>();
  for (const [key, members] of cells) {
    const p = Number(key.split("/")[1]);
    const widest = Math.max(0, ...members.map((i) => shortName(nodes, i).length)) * LABEL_CHAR;
    const gap = Math.max(NODE_GAP, widest + 8);
    gapOf.set(key, gap);
    colWidth.set(p, Math.max(colWidth.get(p)!, members.length * gap + 12));
  }
  const colStart = new Map<number, number>();
  let x = LEFT;
  for (const p of positions) {
    colStart.set(p, x);
    x += colWidth.get(p)!;
  }
  const height = TOP + rowKeys.length * ROW_H + BOTTOM;
  const rowY = (key: number) => TOP + (rowKeys.length - 1 - rowKeys.indexOf(key)) * ROW_H + ROW_H / 2;
  const xs = new Float64Array(n);
  const ys = new Float64Array(n);
  for (const [key, members] of cells) {
    const p = Number(key.split("/")[1]);
    const gap = gapOf.get(key)!;
    members.sort((a, b) => Math.abs(nodes.effect[b]) - Math.abs(nodes.effect[a]));
    const centre = colStart.get(p)! + colWidth.get(p)! / 2;
    members.forEach((i, j) => {
      xs[i] = centre + (j - (members.length - 1) / 2) * gap;
      ys[i] = rowY(rowKey(i));
    });
  }
  const right = Math.max(x, LEFT + COL_MIN);
  for (let i = 0; i < n; i++) {
    if (!isMetric(i)) continue;
    xs[i] = (LEFT + right) / 2;
    ys[i] = rowY(rowKey(i));
  }
  const rowLabel = (key: number) => nodes.places[Array.from({ length: n }, (_, k) => k).find((k) => rowKey(k) === key)!];
  return {
    x: xs, y: ys, width: right + 12, height,
    rows: rowKeys.map((key) => ({ label: rowLabel(key), y: rowY(key) })),
    cols: positions.map((p) => ({ label: labelOf(p), token: tokenOf(p), x: colStart.get(p)! + colWidth.get(p)! / 2 })),
  };
}

function options(labels: Record<string, string>): [string, string][] {
  return Object.entries(labels);
}

async function render({ model, el, signal, host }: RenderProps<Traits>): Promise<void> {
  const shell = createShell(el, model.get("title"), "iw-circuit", signal, () => draw());
  const requester = new Requester(model, shell.status, signal, shell.root);
  const selection = await connectSelection(model, host, signal);

  let nodes: Nodes;
  let edges: Edges;
  try {
    nodes = await decodeNodes(model.get("nodes"));
    edges = await decodeEdges(model.get("edges"), nodes.ids.length);
  } catch (error) {
    shell.status.showError(`could not read the circuit: ${(error as Error).message}`);
    return;
  }
  const n = nodes.ids.length;
  const layout = layOut(nodes, model.get("kind_order"), model.get("tokens"));
  const colours = model.get("colours");
  /** What the colours show: a node's (or edge's) support for the metric, sign * effect. */
  const support = (value: number) => colours.sign * value;
  // the metric node's "effect" is the total effect of the patch, another quantity: the scale is the nodes'
  const isMetric = (i: number) => nodes.kinds[i] === "metric";
  const nodeMax = Math.max(0, ...Array.from(nodes.effect, Math.abs).filter((v, i) => Number.isFinite(v) && !isMetric(i)));
  const edgeMax = Math.max(0, ...Array.from(edges.weight, Math.abs).filter(Number.isFinite));
  let ablated: number | null = null;

  // ---- toolbar
  let actions = Object.keys(model.get("actions"));
  const actionSelect = select([], "", "on click");
  const ablationSelect = select(options(model.get("ablations")), model.get("ablation"), "ablation");
  const actionControl = control("On click", actionSelect);
  const ablationControl = control("Ablation", ablationSelect);
  shell.toolbar.append(actionControl, ablationControl);
  /** The click actions the kernel offers (they change when Python registers a callback with on_open). */
  function showActions(): void {
    actions = Object.keys(model.get("actions"));
    setChildren(actionSelect, ...options(model.get("actions")).map(([value, label]) => {
      const option = h("option", {}, label);
      option.value = value;
      return option;
    }));
    actionSelect.value = model.get("action");
    actionControl.hidden = !actions.length;
    ablationControl.hidden = !actions.includes("ablate");
  }
  showActions();
  shell.toolbar.append(h("span", { className: "iw-hint" }, `${n} nodes \u00b7 ${edges.src.length} edges`));

  const canvas = svg("svg", { class: "iw-graph", role: "img", "aria-label": `circuit of ${n} nodes` });
  const outcome = h("div", { className: "iw-panel iw-outcome", attrs: { "aria-live": "polite" } },
    h("div", { className: "iw-hint" }, actions.length ? "Click a node." : "Hover nodes and edges for details."));
  shell.body.append(h("div", { className: "iw-graph-box" }, canvas), outcome);

  const edgeEls: SVGPathElement[] = [];
  const nodeEls: SVGElement[] = [];

  // ---- drawing
  function draw(): void {
    const theme = shell.theme();
    const scale: ColourScale = divergingScale(theme, nodeMax, colours.units);
    canvas.setAttribute("width", String(layout.width));
    canvas.setAttribute("height", String(layout.height));
    canvas.setAttribute("viewBox", `0 0 ${layout.width} ${layout.height}`);
    canvas.replaceChildren();
    edgeEls.length = 0;
    nodeEls.length = 0;
    const guides = svg("g", { class: "iw-guides" });
    layout.rows.forEach((row) => {
      guides.append(svg("line", { x1: LEFT - 6, x2: layout.width, y1: row.y, y2: row.y }));
      guides.append(svg("text", { x: LEFT - 10, y: row.y, "text-anchor": "end", "dominant-baseline": "middle" }, row.label));
    });
    layout.cols.forEach((col) => {
      guides.append(svg("text", { class: "iw-col-position", x: col.x, y: layout.height - 24, "text-anchor": "middle" }, col.label));
      if (col.token) guides.append(svg("text", { class: "iw-col-token", x: col.x, y: layout.height - 8, "text-anchor": "middle" }, col.token));
    });
    canvas.append(guides);
    const edgeLayer = svg("g", { class: "iw-edges" });
    for (let e = 0; e < edges.src.length; e++) {
      const [a, b] = [edges.src[e], edges.dst[e]];
      const [x1, y1, x2, y2] = [layout.x[a], layout.y[a], layout.x[b], layout.y[b]];
      const mid = (y1 + y2) / 2;
      const w = edges.weight[e];
      const path = svg("path", {
        d: `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}`,
        stroke: cssColour(support(w) >= 0 ? theme.accent : theme.negative),
        "stroke-width": (0.75 + 5.25 * (edgeMax > 0 ? Math.abs(w) / edgeMax : 0)).toFixed(2),
        "data-edge": e,
      });
      edgeEls.push(path);
      edgeLayer.append(path);
    }
    canvas.append(edgeLayer);
    const nodeLayer = svg("g", { class: "iw-nodes" });
    for (let i = 0; i < n; i++) {
      const radius = isMetric(i) ? 10 : 5 + 7 * Math.sqrt(nodeMax > 0 ? Math.abs(nodes.effect[i]) / nodeMax : 0);
      const fill = isMetric(i) ? cssColour(theme.background) : cssColour(colourOf(scale, support(nodes.effect[i])));
      const isFeature = nodes.feature[i] >= 0 || nodes.kinds[i] === "metric";
      const shape = isFeature
        ? svg("circle", { cx: layout.x[i], cy: layout.y[i], r: radius.toFixed(2) })
        : svg("rect", { x: layout.x[i] - radius, y: layout.y[i] - radius, width: 2 * radius, height: 2 * radius, rx: 2 });
      shape.setAttribute("fill", fill);
      shape.setAttribute("stroke", cssColour(theme.foreground));
      shape.setAttribute("data-node", String(i));
      shape.setAttribute("data-id", nodes.ids[i]);
      shape.setAttribute("class", `iw-node${i === ablated ? " iw-ablated" : ""}`);
      nodeEls.push(shape);
      nodeLayer.append(shape, svg("text", { class: "iw-node-label", x: layout.x[i], y: layout.y[i] + radius + 11, "text-anchor": "middle" },
        shortName(nodes, i)));
    }
    canvas.append(nodeLayer);
    setChildren(shell.footer, legend(scale),
      h("span", { className: "iw-colour-key" },
        h("span", { className: "iw-swatch", style: { background: cssColour(theme.accent) } }),
        h("span", { className: "iw-supports" }, colours.supports),
        h("span", { className: "iw-swatch", style: { background: cssColour(theme.negative) } }),
        h("span", { className: "iw-opposes" }, colours.opposes)),
      h("span", { className: "iw-edge-key" }, "nodes and edges alike; edge width \u221d |weight| (max ",
        h("span", { className: "iw-edge-max" }, formatNumber(edgeMax)), ")"),
      h("span", { className: "iw-hint" }, "circles: features \u00b7 squares: errors, embeddings"));
  }

  function highlight(node: number | null): void {
    canvas.classList.toggle("iw-focused", node !== null);
    edgeEls.forEach((path, e) => path.classList.toggle("iw-hot", node !== null && (edges.src[e] === node || edges.dst[e] === node)));
    nodeEls.forEach((shape, i) => shape.classList.toggle("iw-hot", i === node));
  }

  function describeNode(i: number): string[] {
    const lines = [nodes.labels[i], ...(nodes.clerps[i] ? [`label: ${nodes.clerps[i]}`] : []), `id ${nodes.ids[i]}`,
      `${isMetric(i) ? "total effect of the patch" : "effect"}: ${formatNumber(nodes.effect[i])}`];
    if (!isMetric(i) && nodes.effect[i] !== 0) lines.push(support(nodes.effect[i]) > 0 ? colours.supports : colours.opposes);
    if (!Number.isNaN(nodes.activation[i])) lines.push(`activation: ${formatNumber(nodes.activation[i])}`);
    let into = 0;
    let out = 0;
    for (let e = 0; e < edges.src.length; e++) {
      if (edges.dst[e] === i) into++;
      if (edges.src[e] === i) out++;
    }
    lines.push(`${into} edges in \u00b7 ${out} out`);
    return lines;
  }

  // ---- clicks reach the kernel
  async function act(i: number): Promise<void> {
    const update: Record<string, number | null> = { layer: nodes.layer[i] };
    if (nodes.position[i] >= 0) update.token = nodes.position[i];
    if (nodes.feature[i] >= 0) update.feature = nodes.feature[i];
    selection.set(update);
    const action = model.get("action");
    if (!actions.length) return;
    if (action === "ablate") {
      ablated = i;
      draw();
      const result = await requester.fetch<Ablated>("ablate", { node: nodes.ids[i] }, { key: "act" });
      if (!result) return;
      setChildren(outcome,
        h("div", { className: "iw-outcome-title" }, `${result.ablation}-ablated ${result.label} `, clerpSpan(result.clerp)),
        metricChange("metric", Number(result.metric_before), Number(result.metric_after)),
        h("div", { className: "iw-hint" }, `the node's attributed effect: ${formatNumber(nodes.effect[i])}`),
        codeBox(result.code));
    } else {
      const result = await requester.fetch<Opened>("open", { node: nodes.ids[i] }, { key: "act" });
      if (!result) return;
      setChildren(outcome,
        h("div", { className: "iw-outcome-title" }, `opened ${result.label} `, clerpSpan(result.clerp)),
        h("div", { className: "iw-opened" }, `${result.hook} \u00b7 feature ${result.feature}`),
        codeBox(result.code));
    }
  }

  // ---- events
  canvas.addEventListener("mouseover", (event) => {
    const target = event.target as Element;
    if (target.hasAttribute("data-node")) {
      const i = Number(target.getAttribute("data-node"));
      highlight(i);
      shell.tooltip.show(event, describeNode(i));
    } else if (target.hasAttribute("data-edge")) {
      const e = Number(target.getAttribute("data-edge"));
      highlight(null);
      shell.tooltip.show(event, [`${nodes.labels[edges.src[e]]} \u2192 ${nodes.labels[edges.dst[e]]}`, `weight: ${formatNumber(edges.weight[e])}`]);
    }
  });
  canvas.addEventListener("mouseout", (event) => {
    const to = (event as MouseEvent).relatedTarget as Element | null;
    if (!to || !(to.hasAttribute?.("data-node") || to.hasAttribute?.("data-edge"))) {
      highlight(null);
      shell.tooltip.hide();
    }
  });
  canvas.addEventListener("click", (event) => {
    const target = event.target as Element;
    if (target.hasAttribute("data-node")) void act(Number(target.getAttribute("data-node")));
  });
  actionSelect.addEventListener("change", () => { model.set("action", actionSelect.value); model.save_changes(); });
  ablationSelect.addEventListener("change", () => { model.set("ablation", ablationSelect.value); model.save_changes(); });
  model.on("change:action", () => { actionSelect.value = model.get("action"); });
  model.on("change:actions", showActions);
  model.on("change:ablation", () => { ablationSelect.value = model.get("ablation"); });

  draw();
}

export default { render };
