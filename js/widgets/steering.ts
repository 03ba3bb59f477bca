// Steering: one slider per direction (an SAE feature's decoder row, or a user's vector); moving a slider
// asks the kernel, after a short pause, to generate the continuation with and without the steering, shown
// side by side. While the kernel works, newer settings replace older waiting ones (one generation per
// burst). Python side: interpwidgets/widgets/steering.py.

import "../lib/base.css";
import "./features/features.css";
import "./steering.css";
import type { RenderProps } from "../lib/anywidget";
import { h, select, setChildren } from "../lib/dom";
import { formatNumber, quoteToken } from "../lib/format";
import { Requester } from "../lib/messaging";
import { connectSelection } from "../lib/selection";
import { control, createShell } from "../lib/shell";
import { tokenFromEvent, tokenSpan } from "../lib/tokens";
import { integerInput, readInteger } from "./features/views";
import { hookLayer } from "./features/wire";

const DEBOUNCE_MS = 250;
const SLIDER_STEPS = 200;

interface Row {
  label: string;
  hook: string;
  limit: number;
  feature: number | null;
  source: string | null;
}

interface Generation {
  description: string;
  baseline: string[];
  steered: string[];
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

async function render({ model, el, signal, host }: RenderProps): Promise<void> {
  const tokens = model.get("tokens") as string[];
  const hooks = model.get("hooks") as string[];
  const sizes = model.get("sizes") as number[];
  const shell = createShell(el, "Steering", "iw-steering", signal, () => undefined);
  const requester = new Requester(model, shell.status, signal, shell.root);
  const selection = await connectSelection(model, host, signal);

  let rows = model.get("rows") as Row[];
  let scales = (model.get("scales") as number[]).slice();
  let timer: number | undefined;
  let shown: Generation | null = null;
  signal.addEventListener("abort", () => window.clearTimeout(timer));

  // ---- toolbar: generation settings, adding a feature
  const newTokens = integerInput(model.get("max_new_tokens") as number, 1, 64, "new tokens");
  const sampling = select([["greedy", "greedy"], ["sample", "sample"]], model.get("sampling") as string, "sampling");
  const temperature = h("input", { className: "iw-number iw-temperature", attrs: { type: "number", min: "0.05", max: "5", step: "0.05", "aria-label": "temperature" } });
  temperature.value = String(model.get("temperature"));
  const seed = integerInput(model.get("seed") as number, 0, 2 ** 31 - 1, "seed");
  const addHook = select(hooks.map((name) => [name, name]), hooks[0], "SAE");
  const addFeature = integerInput(selection.get("feature") ?? 0, 0, sizes[0] - 1, "feature to add");
  const addButton = h("button", { className: "iw-button iw-add" }, "add slider");
  const temperatureControl = control("T", temperature);
  const seedControl = control("seed", seed);
  shell.toolbar.append(control("New tokens", newTokens), control("Decoding", sampling), temperatureControl, seedControl,
    h("span", { className: "iw-separator" }), control("SAE", addHook), control("feature", addFeature), addButton);

  const slidersBox = h("div", { className: "iw-sliders", attrs: { role: "group", "aria-label": "steering scales" } });
  const description = h("div", { className: "iw-description iw-hint" });
  const baselineBox = h("div", { className: "iw-generation iw-baseline iw-tokens" });
  const steeredBox = h("div", { className: "iw-generation iw-steered iw-tokens" });
  shell.body.append(
    h("div", { className: "iw-steering-main" }, slidersBox, description,
      h("div", { className: "iw-columns" },
        h("div", {}, h("div", { className: "iw-section-title" }, "without steering"), baselineBox),
        h("div", {}, h("div", { className: "iw-section-title" }, "steered"), steeredBox))));
  setChildren(shell.footer, h("span", { className: "iw-hint" },
    "Scales multiply each direction (a feature's decoder row); slider ends: twice the activation's typical norm. Changed tokens are marked."));

  function updateSettings(): void {
    const sample = sampling.value === "sample";
    temperatureControl.hidden = !sample;
    seedControl.hidden = !sample;
    const d = sizes[hooks.indexOf(addHook.value)];
    addFeature.max = String(d - 1);
  }

  // ---- sliders
  function buildSliders(): void {
    if (!rows.length) {
      setChildren(slidersBox, h("div", { className: "iw-hint" }, "No directions yet: add an SAE feature above."));
      return;
    }
    setChildren(slidersBox, ...rows.map((row, index) => {
      const slider = h("input", { className: "iw-slider", attrs: {
        type: "range", min: String(-row.limit), max: String(row.limit), step: String(row.limit / SLIDER_STEPS),
        "aria-label": `scale of ${row.label}`, "data-index": String(index),
      } });
      slider.value = String(scales[index] ?? 0);
      const value = h("span", { className: "iw-scale-value" }, formatNumber(scales[index] ?? 0));
      const reset = h("button", { className: "iw-button iw-reset", attrs: { "aria-label": `reset ${row.label}` } }, "0");
      const remove = h("button", { className: "iw-button iw-remove", attrs: { "aria-label": `remove ${row.label}` } }, "\u00d7");
      slider.addEventListener("input", () => {
        scales[index] = Number(slider.value);
        value.textContent = formatNumber(scales[index]);
        schedule();
      });
      reset.addEventListener("click", () => {
        slider.value = "0";
        scales[index] = 0;
        value.textContent = "0";
        schedule();
      });
      remove.addEventListener("click", () => void requester.request("remove", { index }, "rows"));
      const label = h("span", { className: "iw-row-label", title: `added at ${row.hook}` }, row.label);
      if (row.feature !== null) {
        label.classList.add("iw-linkable");
        label.addEventListener("click", () => selection.set({ feature: row.feature, layer: hookLayer(row.source ?? row.hook) }));
      }
      return h("div", { className: "iw-slider-row" }, label, slider, value, reset, remove);
    }));
  }

  // ---- generation (debounced, coalesced while the kernel is busy)
  function schedule(): void {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void generate(), DEBOUNCE_MS);
  }

  function settings(): Record<string, unknown> | null {
    const maxNew = readInteger(newTokens, 1, 64);
    const seedValue = readInteger(seed, 0, 2 ** 31 - 1);
    const t = Number(temperature.value);
    if (maxNew === null || seedValue === null || !(t >= 0.05 && t <= 5)) {
      shell.status.showError("new tokens must be 1\u201364, seed a non-negative integer, temperature 0.05\u20135");
      return null;
    }
    return { max_new_tokens: maxNew, sampling: sampling.value, temperature: t, seed: seedValue };
  }

  async function generate(): Promise<void> {
    const chosen = settings();
    if (!chosen) return;
    const params = { scales: scales.slice(), ...chosen };
    model.set("scales", params.scales);
    for (const [key, value] of Object.entries(chosen)) model.set(key, value);
    model.save_changes();
    const reply = await requester.request<Record<string, unknown>>("generate", params, "generate");
    if (reply.status !== "ok") return;
    const result = reply.result;
    if (!isStrings(result.baseline) || !isStrings(result.steered)) {
      shell.status.showError("unreadable generation in the kernel's reply");
      return;
    }
    show({ description: String(result.description), baseline: result.baseline, steered: result.steered });
  }

  function show(generation: Generation): void {
    shown = generation;
    const prompt = () => h("span", { className: "iw-prompt" }, ...tokens.map((token, i) => tokenSpan(token, i)));
    const continuation = (list: string[], other: string[] | null) => list.map((token, i) => {
      const span = tokenSpan(token, tokens.length + i);
      span.classList.add("iw-new");
      if (other && other[i] !== token) span.classList.add("iw-diff");
      return span;
    });
    setChildren(description, generation.description);
    setChildren(baselineBox, prompt(), ...continuation(generation.baseline, null));
    setChildren(steeredBox, prompt(), ...continuation(generation.steered, generation.baseline));
  }

  function hoverLines(index: number, steered: boolean): string[] {
    if (index < tokens.length) return [`prompt ${quoteToken(tokens[index], index)}`];
    const k = index - tokens.length;
    const own = (steered ? shown?.steered : shown?.baseline) ?? [];
    const lines = [`generated ${quoteToken(own[k] ?? "", index)}${steered ? " with steering" : " without steering"}`];
    const other = (steered ? shown?.baseline : shown?.steered) ?? [];
    if (k < other.length && other[k] !== own[k]) lines.push(`${steered ? "without" : "with"} steering: ${quoteToken(other[k], index)}`);
    return lines;
  }
  for (const [box, steered] of [[baselineBox, false], [steeredBox, true]] as const) {
    box.addEventListener("mouseover", (event) => {
      const hit = tokenFromEvent(event, box);
      if (hit) shell.tooltip.show(event as MouseEvent, hoverLines(hit.index, steered));
    });
    box.addEventListener("mouseleave", () => shell.tooltip.hide());
  }

  // ---- events
  for (const input of [newTokens, temperature, seed]) input.addEventListener("change", schedule);
  sampling.addEventListener("change", () => { updateSettings(); schedule(); });
  addHook.addEventListener("change", updateSettings);
  addButton.addEventListener("click", () => {
    const d = sizes[hooks.indexOf(addHook.value)];
    const feature = readInteger(addFeature, 0, d - 1);
    if (feature === null) {
      shell.status.showError(`feature must be an integer from 0 to ${d - 1}`);
      return;
    }
    void requester.request("add", { hook: addHook.value, feature }, "rows");
  });
  model.on("change:rows", () => {
    rows = model.get("rows") as Row[];
    scales = (model.get("scales") as number[]).slice();
    buildSliders();
    schedule();
  });
  model.on("change:scales", () => {
    const next = model.get("scales") as number[];
    if (next.length === scales.length && next.every((v, i) => v === scales[i])) return;
    scales = next.slice();
    buildSliders();
    schedule();
  });
  selection.onChange(() => {
    const feature = selection.get("feature");
    if (feature !== null && feature < sizes[hooks.indexOf(addHook.value)]) addFeature.value = String(feature);
  });

  updateSettings();
  buildSliders();
  void generate();
}

export default { render };
