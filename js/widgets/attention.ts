// AttentionPatterns: head thumbnails of one layer, one head's query x key pattern on canvas, or a text view
// (hover a token to see its attention over the others). The view writes the `layer`, `head` and `weighting`
// traits and then fetches lazily with bare verbs: "thumbnails" of that layer (max-pooled, uint8), "pattern" of
// that head (float16, lower triangle); each reply says which layer / head / weighting it holds. Built from a model,
// the view has a prompt box (lib/prompt.ts): a new prompt redraws the whole view from the kernel's new tokens.
// Python side: interpwidgets/widgets/attention.py.

import "../lib/base.css";
import "./attention.css";
import type { RenderProps } from "../lib/anywidget";
import { decodeArray } from "../lib/buffers";
import { matrixBitmap, sizeCanvas, drawBitmap } from "../lib/canvas";
import { codeBox } from "../lib/code";
import { type ColourScale, colourOf, cssColour, legend, sequentialScale, textColourOn } from "../lib/colour";
import { h, select, setChildren } from "../lib/dom";
import { displayToken, formatNumber, quoteToken } from "../lib/format";
import { MatrixView } from "../lib/matrix";
import { Requester } from "../lib/messaging";
import { type PromptSlot, type PromptTraits, withPrompt } from "../lib/prompt";
import { connectSelection } from "../lib/selection";
import { control, createShell } from "../lib/shell";
import { tokenFromEvent, tokenSpan } from "../lib/tokens";

const THUMB_PX = 64;
const MATRIX_PX = 520;
const PATTERN_CACHE = 24;

interface Traits extends PromptTraits {
  tokens: string[];
  n_layers: number;
  n_heads: number;
  weightings: string[];
  layer: number;
  head: number;
  view: "matrix" | "text";
  weighting: string;
}

interface Thumbnails {
  key: string; // weighting/layer
  size: number;
  values: Float32Array; // [heads, size, size]
  domainMax: number;
  units: string;
}

interface Pattern {
  key: string; // weighting/layer/head
  n: number;
  values: Float32Array; // [n, n]; NaN where the pattern is masked (keys after the query)
  domainMax: number;
  units: string;
  code: string; // the Python call that returns this pattern
}

type Direction = "from" | "to";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function expectNumber(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new TypeError(`reply lacks ${what}`);
  return value;
}

async function decodeThumbnails(reply: Record<string, unknown>, heads: number): Promise<Thumbnails> {
  const array = await decodeArray(reply.thumbnails);
  const [count, rows, cols] = array.shape;
  if (array.shape.length !== 3 || count !== heads || rows !== cols) throw new RangeError(`thumbnails of shape [${array.shape}]`);
  const key = `${reply.weighting}/${expectNumber(reply.layer, "layer")}`;
  return { key, size: rows, values: array.data, domainMax: expectNumber(reply.domain_max, "domain_max"), units: String(reply.units) };
}

/** Unpacks a head's pattern: "tril" holds rows q = 0..n-1 of keys 0..q back to back; "full" holds n x n. */
async function decodePattern(reply: Record<string, unknown>, n: number): Promise<Pattern> {
  const array = await decodeArray(reply.pattern);
  const values = new Float32Array(n * n);
  if (reply.layout === "tril") {
    if (array.data.length !== (n * (n + 1)) / 2) throw new RangeError(`lower-triangular pattern of ${array.data.length} values for ${n} tokens`);
    values.fill(NaN);
    let source = 0;
    for (let q = 0; q < n; q++) {
      values.set(array.data.subarray(source, source + q + 1), q * n);
      source += q + 1;
    }
  } else {
    if (array.data.length !== n * n) throw new RangeError(`pattern of ${array.data.length} values for ${n} tokens`);
    values.set(array.data);
  }
  const key = `${reply.weighting}/${expectNumber(reply.layer, "layer")}/${expectNumber(reply.head, "head")}`;
  return { key, n, values, domainMax: expectNumber(reply.domain_max, "domain_max"), units: String(reply.units), code: String(reply.code ?? "") };
}

/** The keys with the largest non-zero weights (at most `count`), largest first; masked (NaN) and zero keys are left out. */
function topKeys(weights: ArrayLike<number>, count: number): number[] {
  return range(weights.length).filter((i) => weights[i] > 0).sort((a, b) => weights[b] - weights[a]).slice(0, count);
}

async function render({ model, el, signal, host }: RenderProps<Traits>, prompt: PromptSlot): Promise<void> {
  const tokens = model.get("tokens");
  const n = tokens.length;
  const nLayers = model.get("n_layers");
  const nHeads = model.get("n_heads");
  const shell = createShell(el, `Attention patterns \u00b7 ${n} tokens`, "iw-attention", signal, () => { drawGrid(); drawMain(); });
  const requester = new Requester(model, shell.status, signal, shell.root);
  const promptRow = prompt.row(requester);
  if (promptRow) shell.toolbar.before(promptRow);
  const selection = await connectSelection(model, host, signal);

  let layer = model.get("layer");
  let head = model.get("head");
  let pinned: number | null = null;
  let direction: Direction = "from";
  let thumbnails: Thumbnails | null = null;
  let pattern: Pattern | null = null;
  const thumbnailCache = new Map<string, Thumbnails>();
  const patternCache = new Map<string, Pattern>();

  const weighting = () => model.get("weighting");
  const view = () => model.get("view");
  const thumbnailsKey = () => `${weighting()}/${layer}`;
  const patternKey = () => `${weighting()}/${layer}/${head}`;

  // toolbar
  const layerSelect = select(range(nLayers).map((l) => [String(l), String(l)]), String(layer), "layer");
  const weightings = model.get("weightings");
  const weightingSelect = select(
    weightings.map((w) => [w, w === "value" ? "value-weighted" : "attention"]), weighting(), "weights");
  weightingSelect.disabled = weightings.length < 2;
  const viewSelect = select([["matrix", "matrix"], ["text", "text"]], view(), "view");
  const directionSelect = select([["from", "attention from the token"], ["to", "attention to the token"]], direction, "direction");
  const directionControl = control("Hover shows", directionSelect);
  shell.toolbar.append(control("Layer", layerSelect), control("Weights", weightingSelect), control("View", viewSelect), directionControl);

  const grid = h("div", { className: "iw-heads", attrs: { role: "group", "aria-label": "heads" } });
  const main = h("div", { className: "iw-main" });
  const codeSlot = h("div", { className: "iw-code-slot" });
  shell.body.append(grid, h("div", {}, main, codeSlot));

  const scaleFor = (data: { domainMax: number; units: string }): ColourScale =>
    sequentialScale(shell.theme(), data.domainMax, data.units);

  // ---- data loading: the traits say what to send; coalesced, so only the latest waiting request goes out
  async function loadThumbnails(): Promise<void> {
    let data = thumbnailCache.get(thumbnailsKey());
    if (!data) {
      const fetched = await requester.fetch("thumbnails", {}, { key: "thumbnails", decode: (reply) => decodeThumbnails(reply, nHeads) });
      if (!fetched) return;
      thumbnailCache.set(fetched.key, fetched);
      data = fetched;
    }
    if (data.key !== thumbnailsKey()) return;
    thumbnails = data;
    drawGrid();
  }

  async function loadPattern(): Promise<void> {
    let data = patternCache.get(patternKey());
    if (!data) {
      const fetched = await requester.fetch("pattern", {}, { key: "pattern", decode: (reply) => decodePattern(reply, n) });
      if (!fetched) return;
      patternCache.set(fetched.key, fetched);
      if (patternCache.size > PATTERN_CACHE) patternCache.delete(patternCache.keys().next().value!);
      data = fetched;
    }
    if (data.key !== patternKey()) return;
    pattern = data;
    setChildren(codeSlot, codeBox(data.code));
    drawMain();
  }

  function refresh(): void {
    thumbnails = thumbnailCache.get(thumbnailsKey()) ?? null;
    pattern = patternCache.get(patternKey()) ?? null;
    drawGrid();
    drawMain();
    void loadThumbnails();
    void loadPattern();
  }

  function show(nextLayer: number, nextHead: number, share: boolean): void {
    if (nextLayer === layer && nextHead === head) return;
    layer = nextLayer;
    head = nextHead;
    layerSelect.value = String(layer);
    model.set("layer", layer);
    model.set("head", head);
    model.save_changes();
    if (share) selection.set({ layer, head });
    refresh();
  }

  // ---- head thumbnails
  function drawGrid(): void {
    const scale = thumbnails ? scaleFor(thumbnails) : null;
    setChildren(grid, ...range(nHeads).map((index) => {
      const canvas = h("canvas");
      const ctx = sizeCanvas(canvas, THUMB_PX, THUMB_PX);
      if (thumbnails && scale) {
        const size = thumbnails.size;
        drawBitmap(ctx, matrixBitmap(thumbnails.values, size, size, scale, index * size * size), 0, 0, THUMB_PX, THUMB_PX);
      }
      const button = h("button", {
        className: `iw-head${index === head ? " iw-selected" : ""}`,
        attrs: { "aria-pressed": String(index === head), "data-head": String(index) },
        title: `layer ${layer}, head ${index}`,
      }, canvas, h("span", {}, `L${layer}H${index}`));
      button.addEventListener("click", () => show(layer, index, true));
      return button;
    }));
  }

  // ---- the selected head
  function drawMain(): void {
    shell.tooltip.hide(); // what it said belonged to the view being replaced
    directionControl.hidden = view() !== "text";
    if (!pattern) {
      setChildren(main, h("div", { className: "iw-placeholder" }, `layer ${layer}, head ${head}: loading\u2026`));
      setChildren(shell.footer);
      return;
    }
    if (view() === "text") drawText(pattern);
    else drawMatrix(pattern);
  }

  const valueAt = (data: Pattern, query: number, key: number) => data.values[query * data.n + key];

  function drawMatrix(data: Pattern): void {
    const scale = scaleFor(data);
    const labels = tokens.map(displayToken);
    const matrix = new MatrixView({ rows: n, cols: n, rowLabels: labels, colLabels: labels, maxWidth: MATRIX_PX, maxHeight: MATRIX_PX, maxCell: 28 });
    const bitmap = matrixBitmap(data.values, n, n, scale);
    const redraw = () => matrix.draw(bitmap, (ctx, cellW, cellH) => {
      if (pinned === null) return;
      ctx.strokeStyle = cssColour(shell.theme().foreground);
      ctx.lineWidth = 1;
      ctx.strokeRect(0.5, pinned * cellH + 0.5, n * cellW - 1, Math.max(1, cellH - 1));
    });
    redraw();
    matrix.onHover((cell, event) => {
      if (!cell) return shell.tooltip.hide();
      const value = valueAt(data, cell.row, cell.col);
      shell.tooltip.show(event, [
        `query ${quoteToken(tokens[cell.row], cell.row)}`,
        `key ${quoteToken(tokens[cell.col], cell.col)}`,
        `L${layer}H${head} ${data.units}: ${Number.isNaN(value) ? "masked" : formatNumber(value)}`,
      ]);
    });
    matrix.onClick((cell) => {
      if (!cell) return;
      pinned = pinned === cell.row ? null : cell.row;
      selection.set({ token: pinned });
      redraw();
    });
    setChildren(main, h("div", { className: "iw-caption" }, `L${layer}H${head}: rows are queries, columns keys`), matrix.el);
    setChildren(shell.footer, legend(scale), h("span", { className: "iw-hint" }, "hover: value \u00b7 click a row: select its token"));
  }

  function drawText(data: Pattern): void {
    const spans = tokens.map((token, index) => tokenSpan(token, index));
    const text = h("div", { className: "iw-text", attrs: { "data-layer": String(layer), "data-head": String(head) } }, ...spans);
    // the legend keeps its place while no token is focused (hidden, not removed): the view's height never changes
    // on hover, so the notebook does not scroll under the pointer
    const legendSlot = h("span", { className: "iw-text-legend" });
    const weightsOf = (focus: number) => range(n).map((other) =>
      direction === "from" ? valueAt(data, focus, other) : valueAt(data, other, focus));
    const units = `${data.units} (scale: this token's maximum)`;
    let coloured: number | null | undefined; // the focus the spans show (undefined: not drawn yet)

    const colour = (focus: number | null) => {
      if (focus === coloured) return; // the same token again: nothing to change
      coloured = focus;
      if (focus === null) {
        spans.forEach((span) => { span.style.background = ""; span.style.color = ""; span.classList.remove("iw-focus"); });
        if (!legendSlot.firstChild) setChildren(legendSlot, legend(sequentialScale(shell.theme(), data.domainMax, units)));
        legendSlot.style.visibility = "hidden";
        return;
      }
      const weights = weightsOf(focus);
      const rowMax = Math.max(0, ...weights.filter((w) => !Number.isNaN(w)));
      const scale = sequentialScale(shell.theme(), rowMax, units);
      spans.forEach((span, index) => {
        const weight = weights[index];
        span.classList.toggle("iw-focus", index === focus);
        if (Number.isNaN(weight)) { span.style.background = ""; span.style.color = ""; return; }
        const rgb = colourOf(scale, weight);
        span.style.background = cssColour(rgb);
        span.style.color = textColourOn(rgb);
      });
      setChildren(legendSlot, legend(scale));
      legendSlot.style.visibility = "";
    };

    let tipFor = "";
    const tip = (event: MouseEvent, key: string, lines: () => string[]) => {
      if (key === tipFor && !shell.tooltip.el.hidden) return; // still over the same token
      tipFor = key;
      shell.tooltip.show(event, lines());
    };
    text.addEventListener("mouseover", (event) => {
      const hit = tokenFromEvent(event, text);
      if (!hit) return;
      const focus = pinned ?? hit.index;
      colour(focus);
      if (pinned !== null) {
        const value = direction === "from" ? valueAt(data, pinned, hit.index) : valueAt(data, hit.index, pinned);
        const [from, to] = direction === "from" ? [pinned, hit.index] : [hit.index, pinned];
        tip(event as MouseEvent, `${pinned}/${hit.index}`, () => [
          `${quoteToken(tokens[from], from)} \u2192 ${quoteToken(tokens[to], to)}`,
          `L${layer}H${head} ${data.units}: ${Number.isNaN(value) ? "masked" : formatNumber(value)}`,
        ]);
      } else {
        tip(event as MouseEvent, `${focus}`, () => {
          const weights = weightsOf(focus);
          const top = topKeys(weights, 3);
          return [
            `${quoteToken(tokens[focus], focus)} ${direction === "from" ? "attends to" : "is attended by"}:`,
            ...(top.length ? top.map((i) => `  ${quoteToken(tokens[i], i)}  ${formatNumber(weights[i])}`) : ["  no token with a weight above 0"]),
          ];
        });
      }
    });
    text.addEventListener("mouseleave", () => { tipFor = ""; shell.tooltip.hide(); colour(pinned); });
    text.addEventListener("click", (event) => {
      const hit = tokenFromEvent(event, text);
      if (!hit) return;
      pinned = pinned === hit.index ? null : hit.index;
      selection.set({ token: pinned });
      tipFor = "";
      colour(pinned);
    });
    colour(pinned);
    setChildren(main, h("div", { className: "iw-caption" }, `L${layer}H${head}: hover a token to see its attention; click to pin it`), text);
    setChildren(shell.footer, legendSlot);
  }

  // ---- controls and links
  layerSelect.addEventListener("change", () => show(Number(layerSelect.value), head, true));
  weightingSelect.addEventListener("change", () => {
    model.set("weighting", weightingSelect.value);
    model.save_changes();
    refresh();
  });
  viewSelect.addEventListener("change", () => {
    model.set("view", viewSelect.value as Traits["view"]);
    model.save_changes();
    drawMain();
  });
  directionSelect.addEventListener("change", () => {
    direction = directionSelect.value as Direction;
    drawMain();
  });
  const adoptTraits = () => {
    weightingSelect.value = weighting();
    viewSelect.value = view();
    const nextLayer = model.get("layer");
    const nextHead = model.get("head");
    if (nextLayer !== layer || nextHead !== head) show(nextLayer, nextHead, true);
    else refresh();
  };
  model.on("change:layer", adoptTraits);
  model.on("change:head", adoptTraits);
  model.on("change:weighting", adoptTraits);
  model.on("change:view", adoptTraits);
  selection.onChange(() => {
    const nextLayer = selection.get("layer");
    const nextHead = selection.get("head");
    const token = selection.get("token");
    const validLayer = nextLayer !== null && nextLayer < nLayers ? nextLayer : layer;
    const validHead = nextHead !== null && nextHead < nHeads ? nextHead : head;
    const nextPinned = token !== null && token < n ? token : null;
    if (nextPinned !== pinned) {
      pinned = nextPinned;
      if (validLayer === layer && validHead === head) drawMain();
    }
    show(validLayer, validHead, false);
  });

  refresh();
}

export default { render: withPrompt(render) };
