// AttributionGraphView: an attribution graph on a canvas, laid out by layer (rows: embeddings at the bottom, logits
// on top) and token position (columns), node size by influence, shape and colour by type, edges coloured by sign
// with width and opacity by |direct effect|. The node- and edge-threshold sliders re-prune in the browser
// (lib/prune.ts, exactly graph.prune) and redraw; then the kernel measures the faithfulness of what is shown
// (debounced, latest wins). Hover a node for its label, activation, influence and top activations; click to select,
// open its dashboard, ablate or steer it (the kernel's graph.intervene); shift-click or drag a box to select, group
// the selection into a named supernode (drawn as one node), search nodes by label or id.
// Python side: interpwidgets/widgets/attribution_graph.py.

import "../lib/base.css";
import "./attribution_graph.css";
import type { RenderProps } from "../lib/anywidget";
import { sizeCanvas } from "../lib/canvas";
import { codeBox } from "../lib/code";
import { cssColour } from "../lib/colour";
import { h, select, setChildren } from "../lib/dom";
import { formatNumber } from "../lib/format";
import { Requester } from "../lib/messaging";
import { beforeAndAfter, metricChange, type Predictions } from "../lib/outcome";
import { ownKeys } from "../lib/prompt";
import { LOGIT, NODE_TYPES, prune } from "../lib/prune";
import { connectSelection } from "../lib/selection";
import { control, createShell } from "../lib/shell";
import { type Marks, drawMarks, drawPicture, maxWeight, paletteOf } from "./attribution_graph/draw";
import { type Layout, layOut, rowsOf } from "./attribution_graph/layout";
import { type GraphData, type Totals, decodeGraph } from "./attribution_graph/wire";

const FAITHFULNESS_DELAY_MS = 150;
const SLIDER_STEP = 0.01;
const MAX_MEMBERS_SHOWN = 8;

interface Traits {
  nodes: Record<string, unknown>;
  edges: Record<string, unknown>;
  totals: Totals;
  tokens: string[];
  supernodes: Record<string, string[]>;
  actions: Record<string, string>;
  ablations: string[];
  limits: { node_threshold: [number, number]; edge_threshold: [number, number]; factor: [number, number]; runs: boolean };
  title: string;
  node_threshold: number;
  edge_threshold: number;
  selection: string;
}

interface Faithfulness {
  faithfulness: number;
  completeness: number;
  n_nodes: number;
  ablation: string;
  ms: number;
  code: string;
}

interface Intervened {
  label: string;
  mode: string;
  factor: number;
  freeze_attention: boolean;
  constrained: boolean;
  set: number;
  targets: { id: string; label: string; before: number; after: number }[];
  top_before: Predictions;
  top_after: Predictions;
  code: string;
}

/** Frame timings the benchmark reads: the last pruning, picture and overlay, in ms, on the root's dataset. */
function timed<T>(root: HTMLElement, key: string, run: () => T): T {
  const start = performance.now();
  const out = run();
  root.dataset[key] = (performance.now() - start).toFixed(3);
  return out;
}

function slider(label: string, min: number, max: number, value: number): [HTMLInputElement, HTMLSpanElement, HTMLLabelElement] {
  const input = h("input", { className: "iw-ag-slider", attrs: { type: "range", "aria-label": label } });
  input.min = String(min);
  input.max = String(max);
  input.step = String(SLIDER_STEP);
  input.value = String(value);
  ownKeys(input, () => {}); // arrow keys move the slider, not JupyterLab's cell selection
  const shown = h("span", { className: "iw-ag-slider-value" }, value.toFixed(2));
  return [input, shown, control(label, h("span", { className: "iw-ag-slider-box" }, input, shown))];
}

async function render({ model, el, signal, host }: RenderProps<Traits>): Promise<void> {
  const shell = createShell(el, model.get("title"), "iw-agraph", signal, () => { palette = null; schedule(true); });
  const root = shell.root;
  const requester = new Requester(model, shell.status, signal, root);
  const selection = await connectSelection(model, host, signal);
  let g: GraphData;
  try {
    g = await decodeGraph(model.get("nodes"), model.get("edges"), model.get("totals"));
  } catch (error) {
    shell.status.showError(`could not read the graph: ${(error as Error).message}`);
    return;
  }
  const rows = rowsOf(g);
  const limits = model.get("limits");
  const totals = g.totals;
  const idIndex = new Map(g.ids.map((id, i) => [id, i]));
  const searchText = g.ids.map((id, i) => `${id}\n${g.labels[i]}\n${g.clerps[i]}`.toLowerCase());

  // ---- toolbar: sliders, counts, faithfulness
  const [nodeSlider, nodeValue, nodeControl] = slider("node threshold", limits.node_threshold[0], limits.node_threshold[1], model.get("node_threshold"));
  const [edgeSlider, edgeValue, edgeControl] = slider("edge threshold", limits.edge_threshold[0], limits.edge_threshold[1], model.get("edge_threshold"));
  const nNodes = h("span", { className: "iw-ag-n-nodes" });
  const nEdges = h("span", { className: "iw-ag-n-edges" });
  const counts = h("span", { className: "iw-ag-counts" }, nNodes, ` of ${totals.nodes.toLocaleString("en")} nodes \u00b7 `, nEdges,
    ` of ${totals.edges.toLocaleString("en")} edges shown`);
  const ablations = model.get("ablations");
  const ablationSelect = select(ablations.map((a) => [a, `${a} ablation`]), ablations[0], "faithfulness ablation");
  const faithValue = h("span", { className: "iw-ag-faith-value" }, "\u2026");
  const faithDetail = h("span", { className: "iw-ag-faith-detail" });
  const faith = h("span", { className: "iw-ag-faith", attrs: { "aria-live": "polite" } },
    "faithfulness ", faithValue, " ", faithDetail);
  shell.toolbar.append(nodeControl, edgeControl, counts);
  const faithRow = h("div", { className: "iw-ag-row" }, limits.runs ? faith
    : h("span", { className: "iw-hint" }, "faithfulness needs the model the graph was built with, and this graph holds none (read from a file)"));
  if (limits.runs && ablations.length > 1) faithRow.append(control("measured by", ablationSelect));

  // ---- click tools, selection, supernodes, search
  const actions = model.get("actions");
  const actionSelect = select(Object.entries(actions), "select", "on click");
  const factorInput = h("input", { className: "iw-ag-factor", attrs: { type: "number", "aria-label": "steering factor" } });
  factorInput.min = String(limits.factor[0]);
  factorInput.max = String(limits.factor[1]);
  factorInput.step = "0.5";
  factorInput.value = "2";
  const checkbox = (label: string, checked: boolean) => {
    const input = h("input", { attrs: { type: "checkbox", "aria-label": label } });
    input.checked = checked;
    return [input, h("label", { className: "iw-control" }, input, h("span", {}, label))] as const;
  };
  const [freezeInput, freezeControl] = checkbox("freeze attention", true);
  const [constrainedInput, constrainedControl] = checkbox("constrained (direct effects only)", false);
  const factorControl = control("factor", factorInput);
  const runControls = h("span", { className: "iw-ag-run-controls" }, factorControl, freezeControl, constrainedControl);
  ownKeys(factorInput, () => {});
  const nameInput = h("input", { className: "iw-ag-name", attrs: { type: "text", "aria-label": "supernode name", placeholder: "supernode name" } });
  ownKeys(nameInput, () => void group());
  const groupButton = h("button", { className: "iw-button iw-ag-group" }, "group");
  const ungroupButton = h("button", { className: "iw-button iw-ag-ungroup" }, "ungroup");
  const clearButton = h("button", { className: "iw-button iw-ag-clear" }, "clear");
  const selectedCount = h("span", { className: "iw-ag-selected" });
  const searchInput = h("input", { className: "iw-ag-search", attrs: { type: "search", "aria-label": "search nodes", placeholder: "search labels and ids" } });
  ownKeys(searchInput, () => {});
  const matchCount = h("span", { className: "iw-ag-matches" });
  shell.toolbar.append(faithRow,
    h("div", { className: "iw-ag-row" }, control("On click", actionSelect), runControls),
    h("div", { className: "iw-ag-row" }, selectedCount, nameInput, groupButton, ungroupButton, clearButton,
      control("Search", searchInput), matchCount));

  // ---- the canvases, their labels, the side panel
  const picture = h("canvas", { className: "iw-ag-picture" });
  const overlay = h("canvas", { className: "iw-ag-overlay", attrs: { role: "img", "aria-label": "attribution graph" } });
  const rowLabels = h("div", { className: "iw-ag-row-labels" });
  const colLabels = h("div", { className: "iw-ag-col-labels" });
  const stage = h("div", { className: "iw-ag-stage" }, picture, overlay, rowLabels);
  const box = h("div", { className: "iw-ag-box" }, stage, colLabels);
  const superList = h("div", { className: "iw-ag-supernodes" });
  const outcome = h("div", { className: "iw-panel iw-outcome", attrs: { "aria-live": "polite" } },
    h("div", { className: "iw-hint" }, "Hover a node for its label; click it to act; shift-click or drag a box to select."));
  shell.body.append(box, h("div", { className: "iw-ag-side" }, superList, outcome));

  // ---- state
  let masks = prune(g, model.get("node_threshold"), model.get("edge_threshold"));
  let shownEdges = new Int32Array(0);
  let layout: Layout | null = null;
  let palette: ReturnType<typeof paletteOf> | null = null;
  let supernodes = new Map<string, number[]>();
  const selected = new Set<string>(); // item keys: "n:<local index>" | "s:<name>"
  let matches = new Set<number>(); // local node indices
  let intervened = "";
  let hover = -1;
  let hoverEdges: number[] = [];
  let boxDrag: { x0: number; y0: number; x1: number; y1: number; moved: boolean } | null = null;
  let version = 0;
  let faithTimer: ReturnType<typeof setTimeout> | undefined;
  let frame = 0;
  let pendingLayout = false;
  let merged = 0;

  const keyOf = (k: number) => (layout!.items[k].node >= 0 ? `n:${layout!.items[k].node}` : `s:${layout!.items[k].name}`);
  const itemIndex = (key: string) => layout ? layout.items.findIndex((_, k) => keyOf(k) === key) : -1;

  function readSupernodes(): void {
    supernodes = new Map();
    for (const [name, ids] of Object.entries(model.get("supernodes"))) {
      supernodes.set(name, ids.map((id) => idIndex.get(id) ?? -1).filter((i) => i >= 0));
    }
    setChildren(superList, ...(supernodes.size ? [h("div", { className: "iw-ag-side-title" }, "Supernodes")] : []),
      ...[...supernodes].map(([name, members]) => h("div", { className: "iw-ag-supernode", attrs: { "data-name": name } },
        h("span", { className: "iw-ag-supernode-name" }, name), " ",
        h("span", { className: "iw-hint" }, `${model.get("supernodes")[name].length} nodes (${members.length} sent)`))));
  }

  function reprune(): void {
    masks = timed(root, "iwPruneMs", () => prune(g, Number(nodeSlider.value), Number(edgeSlider.value)));
    const kept: number[] = [];
    for (let e = 0; e < masks.edgeMask.length; e++) if (masks.edgeMask[e]) kept.push(e);
    shownEdges = Int32Array.from(kept);
    nNodes.textContent = masks.nNodes.toLocaleString("en");
    nEdges.textContent = masks.nEdges.toLocaleString("en");
    version++;
    askFaithfulness();
  }

  function relayout(): void {
    const width = Math.max(480, Math.floor(box.clientWidth || shell.body.clientWidth || 900) - 2);
    layout = timed(root, "iwLayoutMs", () => layOut(g, rows, masks.nodeMask, supernodes, model.get("tokens"), width));
    const lay = layout;
    stage.style.width = `${lay.width}px`;
    stage.style.height = `${lay.height}px`;
    setChildren(rowLabels, ...lay.rows.map((row) => h("div", { className: "iw-ag-row-label", style: { top: `${row.y}px` } }, row.label)));
    setChildren(colLabels, ...lay.cols.map((col) => h("div", {
      className: "iw-ag-col", title: col.token ? `${col.label} ${col.token}` : col.label,
      style: { left: `${col.x - col.width / 2}px`, width: `${col.width}px` },
    }, h("span", { className: "iw-ag-col-position" }, col.label), col.token ? h("span", { className: "iw-ag-col-token" }, col.token) : null)));
    colLabels.style.width = `${lay.width}px`;
    hover = -1;
  }

  function drawAll(): void {
    if (!layout) return;
    const lay = layout;
    palette ??= paletteOf(shell.theme());
    const font = `11px ${getComputedStyle(root).fontFamily}`;
    timed(root, "iwDrawMs", () => {
      const ctx = sizeCanvas(picture, lay.width, lay.height);
      merged = drawPicture(ctx, g, lay, shownEdges, palette!, font);
    });
    sizeCanvas(overlay, lay.width, lay.height);
    drawOverlay();
    drawLegend();
  }

  function drawOverlay(): void {
    if (!layout || !palette) return;
    const lay = layout;
    const marks: Marks = {
      hover, hoverEdges,
      selected: new Set([...selected].map(itemIndex).filter((k) => k >= 0)),
      matches: new Set([...matches].map((i) => lay.itemOf[i]).filter((k) => k >= 0)),
      intervened: intervened ? itemIndex(intervened) : -1,
      box: boxDrag && boxDrag.moved ? [boxDrag.x0, boxDrag.y0, boxDrag.x1, boxDrag.y1] : null,
    };
    timed(root, "iwOverlayMs", () => {
      const ctx = overlay.getContext("2d")!;
      ctx.setTransform(window.devicePixelRatio || 1, 0, 0, window.devicePixelRatio || 1, 0, 0);
      drawMarks(ctx, g, lay, marks, palette!);
    });
  }

  /** Redraws at the next frame (once however many changes come before it); `full`: the layout too. */
  function schedule(full: boolean): void {
    pendingLayout ||= full;
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      if (pendingLayout) relayout();
      pendingLayout = false;
      drawAll();
    });
  }

  function drawLegend(): void {
    const p = palette!;
    const swatch = (cls: string, colour: string, label: string) => h("span", { className: "iw-ag-key" },
      h("span", { className: `iw-ag-shape ${cls}`, style: { background: colour } }), label);
    const max = maxWeight(g, shownEdges);
    setChildren(shell.footer,
      h("span", { className: "iw-ag-legend" },
        swatch("iw-ag-circle", cssColour(p.feature), "feature"),
        swatch("iw-ag-square", cssColour(p.error), "error"),
        swatch("iw-ag-diamond", cssColour(p.token), "token embedding"),
        swatch("iw-ag-square iw-ag-small", cssColour(p.bias), "bias"),
        swatch("iw-ag-square iw-ag-outline", cssColour(p.logit), "logit target"),
        swatch("iw-ag-circle iw-ag-outline", cssColour(p.supernode), "supernode")),
      h("span", { className: "iw-ag-legend" },
        swatch("iw-ag-line", cssColour(p.positive), "raises its target"),
        swatch("iw-ag-line", cssColour(p.negative), "lowers its target"),
        h("span", { className: "iw-hint" }, "edge width and opacity \u221d |direct effect| (largest shown ",
          h("span", { className: "iw-ag-edge-max" }, formatNumber(max)), "); node size \u221d influence on the logit targets"),
        merged ? h("span", { className: "iw-hint iw-ag-merged" }, `the ${merged.toLocaleString("en")} weakest edges are drawn merged, one line `
          + "per pair of cells (hover a node for its own; a lower edge threshold shows fewer, one by one)") : null));
  }

  // ---- faithfulness: debounced, the latest pruning wins
  function askFaithfulness(): void {
    if (!limits.runs) return;
    clearTimeout(faithTimer);
    faithValue.textContent = "\u2026";
    faithDetail.textContent = "";
    const asked = version;
    faithTimer = setTimeout(async () => {
      const nodes: number[] = [];
      for (let i = 0; i < g.n; i++) if (masks.nodeMask[i]) nodes.push(g.index[i]);
      const reply = await requester.fetch<Faithfulness>("faithfulness", { nodes, ablation: ablationSelect.value }, { key: "faithfulness" });
      if (!reply || asked !== version) return;
      faithValue.textContent = formatNumber(reply.faithfulness);
      faithDetail.textContent = `(${reply.ablation} ablation, ${Math.round(reply.ms)} ms) \u00b7 completeness ${formatNumber(reply.completeness)}`;
      faith.dataset.version = String(asked);
    }, FAITHFULNESS_DELAY_MS);
  }

  // ---- hover
  function describe(k: number): string[] {
    const item = layout!.items[k];
    if (item.node < 0) {
      const all = model.get("supernodes")[item.name] ?? [];
      const influence = item.members.reduce((a, i) => a + g.influence[i], 0);
      const names = all.slice(0, MAX_MEMBERS_SHOWN).map((id) => {
        const i = idIndex.get(id);
        return `  ${i === undefined ? id : g.clerps[i] ? `${g.labels[i]} \u2014 ${g.clerps[i]}` : g.labels[i]}`;
      });
      if (all.length > MAX_MEMBERS_SHOWN) names.push(`  \u2026 and ${all.length - MAX_MEMBERS_SHOWN} more`);
      return [`supernode ${item.name}`, `${all.length} nodes (${item.members.length} shown), influence ${formatNumber(influence)}`,
        "members:", ...names];
    }
    const i = item.node;
    const lines = [g.labels[i]];
    if (g.clerps[i]) lines.push(`\u201c${g.clerps[i]}\u201d`);
    lines.push(`id ${g.ids[i]} \u00b7 ${NODE_TYPES[g.nodeType[i]]}`);
    if (Number.isFinite(g.activation[i])) lines.push(`activation: ${formatNumber(g.activation[i])}`);
    if (g.nodeType[i] !== LOGIT) lines.push(`influence: ${formatNumber(g.influence[i])} (${formatNumber(100 * g.influence[i] / totals.influence)}% of all)`);
    else lines.push(`weight in the target: ${formatNumber(g.logitWeights[i])}`);
    if (g.evidence[i]) lines.push(`top activations: ${g.evidence[i]}`);
    let into = 0;
    let out = 0;
    for (const e of shownEdges) {
      if (g.dst[e] === i) into++;
      if (g.src[e] === i) out++;
    }
    lines.push(`${into} edges in \u00b7 ${out} out (shown)`);
    return lines;
  }

  function pointer(event: MouseEvent): [number, number] {
    const rect = overlay.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  function setHover(k: number): void {
    if (k === hover) return;
    hover = k;
    hoverEdges = [];
    if (k >= 0) {
      const lay = layout!;
      for (const e of shownEdges) if (lay.itemOf[g.src[e]] === k || lay.itemOf[g.dst[e]] === k) hoverEdges.push(e);
    }
  }

  overlay.addEventListener("mousemove", (event) => {
    if (!layout) return;
    const [x, y] = pointer(event);
    if (boxDrag) {
      boxDrag.x1 = x;
      boxDrag.y1 = y;
      boxDrag.moved ||= Math.hypot(x - boxDrag.x0, y - boxDrag.y0) > 4;
    }
    const k = layout.grid.at(x, y);
    setHover(k);
    overlay.style.cursor = k >= 0 ? "pointer" : "default";
    if (k >= 0) {
      overlay.dataset.hover = keyOf(k);
      shell.tooltip.show(event, describe(k));
    } else {
      delete overlay.dataset.hover;
      shell.tooltip.hide();
    }
    drawOverlay();
  });
  overlay.addEventListener("mouseleave", () => {
    setHover(-1);
    shell.tooltip.hide();
    drawOverlay();
  });

  // ---- clicks, selection box
  overlay.addEventListener("mousedown", (event) => {
    if (!layout || event.button !== 0) return;
    const [x, y] = pointer(event);
    boxDrag = { x0: x, y0: y, x1: x, y1: y, moved: false };
  });
  overlay.addEventListener("mouseup", (event) => {
    if (!layout || !boxDrag) return;
    const drag = boxDrag;
    boxDrag = null;
    if (drag.moved) {
      for (const k of layout.grid.inside(drag.x0, drag.y0, drag.x1, drag.y1)) selected.add(keyOf(k));
      showSelection();
      drawOverlay();
      return;
    }
    const k = layout.grid.at(drag.x0, drag.y0);
    if (event.shiftKey || actionSelect.value === "select") {
      if (k < 0) {
        if (!event.shiftKey) selected.clear();
      } else {
        const key = keyOf(k);
        if (event.shiftKey) {
          if (selected.has(key)) selected.delete(key);
          else selected.add(key);
        } else {
          selected.clear();
          selected.add(key);
        }
      }
      showSelection();
      drawOverlay();
      return;
    }
    if (k >= 0) void act(k);
  });

  function showSelection(): void {
    const keys = [...selected];
    selectedCount.textContent = `${keys.length} selected`;
    groupButton.disabled = keys.length < 2;
    ungroupButton.disabled = !keys.some((key) => key.startsWith("s:"));
    clearButton.disabled = !keys.length;
    root.dataset.selected = keys.join(" ");
  }

  async function act(k: number): Promise<void> {
    const item = layout!.items[k];
    const action = actionSelect.value;
    if (item.node >= 0) {
      const i = item.node;
      const update: Record<string, number | null> = { layer: g.layer[i] };
      if (g.position[i] >= 0) update.token = g.position[i];
      if (g.feature[i] >= 0) update.feature = g.feature[i];
      selection.set(update);
    }
    const name = item.node >= 0 ? g.ids[item.node] : item.name;
    if (action === "open") {
      const reply = await requester.fetch<{ label: string; hook: string; feature: number; code: string }>("open", { node: name }, { key: "act" });
      if (!reply) return;
      setChildren(outcome, h("div", { className: "iw-outcome-title" }, `opened ${reply.label}`),
        h("div", { className: "iw-ag-opened" }, `${reply.hook} \u00b7 feature ${reply.feature}`), codeBox(reply.code));
      return;
    }
    const mode = action === "steer" ? "steer" : "ablate";
    const factor = Number(factorInput.value);
    const params = { node: name, mode, factor: Number.isFinite(factor) ? factor : NaN, freeze_attention: freezeInput.checked,
      constrained: constrainedInput.checked };
    intervened = keyOf(k);
    drawOverlay();
    const reply = await requester.fetch<Intervened>("intervene", params, { key: "act" });
    if (!reply) return;
    const how = [reply.freeze_attention ? "attention frozen" : "attention recomputed",
      reply.constrained ? "constrained: direct effects only" : "unconstrained"].join(" \u00b7 ");
    const verb = reply.mode === "ablate" ? "ablated" : `steered \u00d7${formatNumber(reply.factor)}`;
    const tops = await beforeAndAfter(["before", reply.top_before], ["after", reply.top_after]);
    setChildren(outcome,
      h("div", { className: "iw-outcome-title" }, `${verb} ${reply.label}`),
      h("div", { className: "iw-hint" }, `${how} \u00b7 ${reply.set} feature${reply.set === 1 ? "" : "s"} set`),
      ...reply.targets.map((t) => metricChange(t.label, t.before, t.after)),
      tops, codeBox(reply.code));
  }

  async function group(): Promise<void> {
    const name = nameInput.value.trim();
    if (!name) {
      shell.status.showError("type a name for the supernode first");
      return;
    }
    const members: number[] = [];
    for (const key of selected) {
      if (key.startsWith("n:")) members.push(g.index[Number(key.slice(2))]);
      else for (const i of supernodes.get(key.slice(2)) ?? []) members.push(g.index[i]);
    }
    const reply = await requester.fetch<{ name: string; members: string[]; code: string }>("group", { name, nodes: members }, { key: "group" });
    if (!reply) return;
    selected.clear();
    nameInput.value = "";
    showSelection();
    setChildren(outcome, h("div", { className: "iw-outcome-title" }, `grouped ${reply.members.length} nodes as ${reply.name}`),
      codeBox(reply.code));
  }

  async function ungroup(): Promise<void> {
    for (const key of [...selected]) {
      if (!key.startsWith("s:")) continue;
      const reply = await requester.fetch<{ name: string; code: string }>("ungroup", { name: key.slice(2) });
      if (!reply) return;
      selected.delete(key);
      setChildren(outcome, h("div", { className: "iw-outcome-title" }, `ungrouped ${reply.name}`), codeBox(reply.code));
    }
    showSelection();
  }

  function search(): void {
    const query = searchInput.value.trim().toLowerCase();
    matches = new Set();
    if (query) searchText.forEach((text, i) => { if (text.includes(query)) matches.add(i); });
    let shownMatches = 0;
    for (const i of matches) shownMatches += masks.nodeMask[i];
    matchCount.textContent = query ? `${matches.size} match${matches.size === 1 ? "" : "es"} (${shownMatches} shown)` : "";
    drawOverlay();
  }

  // ---- events
  const onSlider = (input: HTMLInputElement, shown: HTMLSpanElement, trait: "node_threshold" | "edge_threshold") => () => {
    const value = Number(input.value);
    shown.textContent = value.toFixed(2);
    model.set(trait, value);
    model.save_changes();
    reprune();
    search();
    schedule(true);
  };
  nodeSlider.addEventListener("input", onSlider(nodeSlider, nodeValue, "node_threshold"));
  edgeSlider.addEventListener("input", onSlider(edgeSlider, edgeValue, "edge_threshold"));
  for (const [trait, input, shown] of [["node_threshold", nodeSlider, nodeValue], ["edge_threshold", edgeSlider, edgeValue]] as const) {
    model.on(`change:${trait}`, () => {
      const value = model.get(trait);
      if (Number(input.value) === value) return;
      input.value = String(value);
      shown.textContent = value.toFixed(2);
      reprune();
      search();
      schedule(true);
    });
  }
  ablationSelect.addEventListener("change", askFaithfulness);
  const showRunControls = () => {
    runControls.hidden = !(actionSelect.value === "ablate" || actionSelect.value === "steer");
    factorControl.hidden = actionSelect.value !== "steer";
  };
  actionSelect.addEventListener("change", showRunControls);
  groupButton.addEventListener("click", () => void group());
  ungroupButton.addEventListener("click", () => void ungroup());
  clearButton.addEventListener("click", () => { selected.clear(); showSelection(); drawOverlay(); });
  searchInput.addEventListener("input", search);
  model.on("change:supernodes", () => { readSupernodes(); schedule(true); });
  // scripting hook: CustomEvent("iw-where", {detail: {id}}) on the root writes where the node (or supernode) of that
  // id is drawn, "x,y" in the overlay's CSS pixels, to root.dataset.where ("" when it is not shown)
  root.addEventListener("iw-where", (event) => {
    const id = String((event as CustomEvent).detail?.id ?? "");
    const k = layout ? layout.items.findIndex((item) => (item.node >= 0 ? g.ids[item.node] : item.name) === id) : -1;
    root.dataset.where = k >= 0 ? `${layout!.items[k].x},${layout!.items[k].y}` : "";
  }, { signal });
  const resize = new ResizeObserver(() => schedule(true));
  resize.observe(shell.body);
  signal.addEventListener("abort", () => {
    resize.disconnect();
    clearTimeout(faithTimer);
    if (frame) cancelAnimationFrame(frame);
  });

  readSupernodes();
  showRunControls();
  showSelection();
  reprune();
  relayout();
  drawAll();
}

export default { render };
