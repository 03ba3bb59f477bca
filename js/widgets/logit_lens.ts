// LogitLens: a layer x position grid on canvas (final layer on top, embeddings at the bottom). Each cell shows its
// top next token; the colour is the probability of each column's final prediction, or of a followed token. Every
// cell's top-k comes down once (the `top` trait), so a click lists them without a kernel call; following a token
// (typed, or clicked in that list) asks the kernel: `follow {token}` answers its probabilities and ranks
// [layer, pos]. Built from a model, the view has a prompt box (lib/prompt.ts): a new prompt redraws the whole view
// from the kernel's new grid. Python side: interpwidgets/widgets/logit_lens.py.

import "../lib/base.css";
import "./logit_lens.css";
import type { RenderProps } from "../lib/anywidget";
import { decodeArray, decodeInt32 } from "../lib/buffers";
import { matrixBitmap } from "../lib/canvas";
import { codeBox } from "../lib/code";
import { type ColourScale, colourOf, cssColour, legend, sequentialScale, textColourOn } from "../lib/colour";
import { h, setChildren } from "../lib/dom";
import { displayToken, formatNumber, quoteToken } from "../lib/format";
import { MatrixView } from "../lib/matrix";
import { Requester } from "../lib/messaging";
import { type PromptSlot, type PromptTraits, ownKeys, withPrompt } from "../lib/prompt";
import { connectSelection } from "../lib/selection";
import { control, createShell } from "../lib/shell";
import { tokenSpan } from "../lib/tokens";

const CELL_W = 64;
const CELL_H = 32;
const TEXT_MIN_W = 30;
const TEXT_MIN_H = 24;
const FINAL_UNITS = "probability of the model's final prediction";

interface Traits extends PromptTraits {
  tokens: string[];
  layers: string[];
  row_layers: number[];
  k: number;
  vocab: string[];
  vocab_ids: unknown;
  top: { index: unknown; probs: unknown };
  final: { index: unknown; probs: unknown; ranks: unknown };
  token: number | null;
  max_token_text: number;
}

/** What colours the grid: [layer, pos] probabilities (engine row order) and, for a followed token, its ranks. */
interface Colouring {
  units: string;
  probs: Float32Array;
  ranks: Int32Array;
  /** The followed token's id, or null for the final predictions (a different token in each column). */
  id: number | null;
  token: string | null;
  code: string | null;
}

interface FollowReply {
  token: string;
  id: number;
  probs: unknown;
  ranks: unknown;
  code: string;
}

interface Cell {
  layer: number; // engine row (0 = resid_pre0)
  pos: number;
}

/** A probability in at most five characters, for the cells: "1", "0.42", "0.042", "<.001". */
function shortProb(p: number): string {
  if (!Number.isFinite(p)) return String(p);
  if (p >= 0.995) return "1";
  if (p >= 0.01) return p.toFixed(2);
  if (p >= 0.001) return p.toFixed(3);
  return "<.001";
}

/** `text` cut to fit `width` pixels in `ctx`'s font, with an ellipsis. */
function fitText(ctx: CanvasRenderingContext2D, text: string, width: number): string {
  if (ctx.measureText(text).width <= width) return text;
  let end = text.length;
  while (end > 1 && ctx.measureText(`${text.slice(0, end)}\u2026`).width > width) end--;
  return `${text.slice(0, end)}\u2026`;
}

async function render({ model, el, signal, host }: RenderProps<Traits>, prompt: PromptSlot): Promise<void> {
  const tokens = model.get("tokens");
  const layers = model.get("layers");
  const rowLayers = model.get("row_layers");
  const vocab = model.get("vocab");
  const k = model.get("k");
  const nLayers = layers.length;
  const n = tokens.length;
  const shell = createShell(el, `Logit lens \u00b7 ${n} tokens \u00b7 ${nLayers} layers`, "iw-lens", signal, () => draw());
  const requester = new Requester(model, shell.status, signal, shell.root);
  const promptRow = prompt.row(requester);
  if (promptRow) shell.toolbar.before(promptRow);
  const selection = await connectSelection(model, host, signal);

  let vocabIds: Int32Array, topIndex: Int32Array, topProbs: Float32Array, finalIndex: Int32Array;
  let base: Colouring;
  try {
    vocabIds = decodeInt32(model.get("vocab_ids")).data;
    const top = model.get("top");
    topIndex = decodeInt32(top.index).data;
    topProbs = (await decodeArray(top.probs)).data;
    const final = model.get("final");
    finalIndex = decodeInt32(final.index).data;
    base = { units: FINAL_UNITS, probs: (await decodeArray(final.probs)).data, ranks: decodeInt32(final.ranks).data, id: null, token: null, code: null };
  } catch (error) {
    shell.status.showError(`could not read the result: ${(error as Error).message}`);
    return;
  }
  if (topIndex.length !== nLayers * n * k || base.probs.length !== nLayers * n || finalIndex.length !== n) {
    shell.status.showError("the result's arrays do not match its layers and tokens");
    return;
  }
  let colouring = base;
  let chosen: Cell | null = null;

  // toolbar: follow a token by its text
  const input = h("input", { className: "iw-input iw-follow-input", attrs: { type: "text", placeholder: "e.g.  Mary", "aria-label": "follow token", spellcheck: "false" } });
  const followButton = h("button", { className: "iw-button iw-follow" }, "follow");
  const resetButton = h("button", { className: "iw-button iw-reset" }, "final predictions");
  const following = h("span", { className: "iw-following" });
  shell.toolbar.append(control("Follow token", input), followButton, resetButton, following,
    h("span", { className: "iw-hint" }, "Enter: colour by that token \u00b7 click a cell: its top predictions"));

  // body: the grid (final layer on top) and the side panel
  const displayRow = (layer: number) => nLayers - 1 - layer;
  const matrix = new MatrixView({
    rows: nLayers, cols: n, rowLabels: layers.slice().reverse(), colLabels: tokens.map(displayToken),
    maxWidth: Math.min(980, n * CELL_W), maxHeight: Math.min(640, nLayers * CELL_H), maxCell: CELL_W, minLabelCell: 10,
  });
  const caption = h("div", { className: "iw-caption" }, "rows: residual stream (bottom: embeddings, top: final layer) \u00b7 columns: tokens");
  const list = h("div", { className: "iw-lens-top-list", attrs: { "aria-live": "polite" } },
    h("div", { className: "iw-hint" }, "Click a cell to list its top predictions; click one of them to follow it."));
  const codeSlot = h("div", { className: "iw-lens-code" });
  shell.body.append(h("div", {}, caption, matrix.el), h("div", { className: "iw-lens-panel" }, list, codeSlot));

  const at = (layer: number, pos: number) => layer * n + pos;
  const topToken = (layer: number, pos: number, i = 0) => vocab[topIndex[at(layer, pos) * k + i]];
  const topProb = (layer: number, pos: number, i = 0) => topProbs[at(layer, pos) * k + i];
  const scale = (): ColourScale => sequentialScale(shell.theme(), 1, colouring.units);

  function draw(): void {
    const colours = scale();
    const shown = new Float32Array(nLayers * n);
    for (let layer = 0; layer < nLayers; layer++) shown.set(colouring.probs.subarray(layer * n, (layer + 1) * n), displayRow(layer) * n);
    const theme = shell.theme();
    const font = getComputedStyle(shell.root).fontFamily || "sans-serif";
    matrix.draw(matrixBitmap(shown, nLayers, n, colours), (ctx, cellW, cellH) => {
      if (cellW >= TEXT_MIN_W && cellH >= TEXT_MIN_H) {
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        for (let layer = 0; layer < nLayers; layer++) {
          for (let pos = 0; pos < n; pos++) {
            const x = (pos + 0.5) * cellW;
            const y = displayRow(layer) * cellH;
            const p = colouring.probs[at(layer, pos)];
            ctx.fillStyle = textColourOn(colourOf(colours, p));
            ctx.font = `11px ${font}`;
            ctx.fillText(fitText(ctx, displayToken(topToken(layer, pos)), cellW - 4), x, y + cellH * 0.32);
            ctx.font = `9px ${font}`;
            const second = colouring.id === null
              ? shortProb(topProb(layer, pos))
              : `${shortProb(p)} r${colouring.ranks[at(layer, pos)]}`;
            ctx.fillText(fitText(ctx, second, cellW - 4), x, y + cellH * 0.74);
          }
        }
      }
      ctx.lineWidth = 2;
      ctx.strokeStyle = cssColour(theme.foreground);
      if (chosen) ctx.strokeRect(chosen.pos * cellW + 1, displayRow(chosen.layer) * cellH + 1, Math.max(1, cellW - 2), Math.max(1, cellH - 2));
    });
    setChildren(shell.footer, legend(colours), h("span", { className: "iw-hint" },
      colouring.id === null ? "each column coloured by its own final prediction" : "r: rank of the followed token (0 = top)"));
    setChildren(following, colouring.token === null ? "" : `following \u2018${displayToken(colouring.token)}\u2019`);
    resetButton.disabled = colouring.id === null;
    setChildren(codeSlot, colouring.code === null ? null : codeBox(colouring.code));
  }

  function showPanel(): void {
    if (!chosen) return;
    const { layer, pos } = chosen;
    const rows = Array.from({ length: k }, (_, i) => {
      const index = topIndex[at(layer, pos) * k + i];
      const row = h("button", { className: "iw-top-row iw-lens-top", attrs: { type: "button", "data-id": String(vocabIds[index]), title: "follow this token" } },
        tokenSpan(vocab[index], i),
        h("div", { className: "iw-bar-track" }, h("div", { className: "iw-bar", style: { width: `${Math.round(topProb(layer, pos, i) * 100)}%` } })),
        h("span", { className: "iw-prob" }, formatNumber(topProb(layer, pos, i))));
      if (colouring.id === vocabIds[index]) row.classList.add("iw-followed");
      row.addEventListener("click", () => void follow(vocabIds[index]));
      return row;
    });
    const finalToken = vocab[finalIndex[pos]];
    setChildren(list,
      h("div", { className: "iw-panel-title" }, `${layers[layer]} \u00b7 ${quoteToken(tokens[pos], pos)}`),
      h("div", { className: "iw-hint" }, `top ${k} next tokens (click one to follow it); final prediction \u2018${displayToken(finalToken)}\u2019`),
      ...rows);
  }

  function choose(cell: Cell | null, share: boolean): void {
    chosen = cell;
    if (cell && share) selection.set({ layer: rowLayers[cell.layer], token: cell.pos });
    draw();
    showPanel();
  }

  async function follow(token: string | number): Promise<void> {
    const reply = await requester.fetch("follow", { token }, { key: "follow", decode: async (result: FollowReply): Promise<Colouring> => {
      const probs = (await decodeArray(result.probs)).data;
      const ranks = decodeInt32(result.ranks).data;
      if (probs.length !== nLayers * n || ranks.length !== nLayers * n) throw new RangeError("probabilities of the wrong shape");
      return { units: `probability of \u2018${displayToken(result.token)}\u2019`, probs, ranks, id: result.id, token: result.token, code: result.code };
    } });
    if (!reply) return;
    colouring = reply;
    draw();
    showPanel();
  }

  matrix.onHover((cell, event) => {
    if (!cell) return shell.tooltip.hide();
    const layer = nLayers - 1 - cell.row;
    const pos = cell.col;
    const lines = [`${layers[layer]} \u00b7 ${quoteToken(tokens[pos], pos)}`,
      `top: \u2018${displayToken(topToken(layer, pos))}\u2019 ${formatNumber(topProb(layer, pos))}`];
    const label = colouring.id === null ? `final prediction \u2018${displayToken(vocab[finalIndex[pos]])}\u2019` : `\u2018${displayToken(colouring.token ?? "")}\u2019`;
    lines.push(`${label}: p ${formatNumber(colouring.probs[at(layer, pos)])}, rank ${colouring.ranks[at(layer, pos)]}`);
    shell.tooltip.show(event, lines);
  });
  matrix.onClick((cell) => {
    if (cell) choose({ layer: nLayers - 1 - cell.row, pos: cell.col }, true);
  });
  const submit = () => {
    if (input.value.length) void follow(input.value);
  };
  ownKeys(input, submit);
  followButton.addEventListener("click", submit);
  resetButton.addEventListener("click", () => {
    colouring = base;
    draw();
    showPanel();
  });
  selection.onChange(() => {
    const layer = selection.get("layer");
    const pos = selection.get("token");
    if (layer === null || pos === null || pos >= n) return;
    if (chosen && chosen.pos === pos && rowLayers[chosen.layer] === layer) return;
    const row = rowLayers.indexOf(layer);
    if (row >= 0) choose({ layer: row, pos }, false);
  });

  draw();
  const first = model.get("token");
  if (first !== null) void follow(first);
}

export default { render: withPrompt(render) };
