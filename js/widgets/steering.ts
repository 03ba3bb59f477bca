// Steering: one slider per direction (an SAE feature's decoder row, or a user's vector); moving a slider writes
// the `scales` trait and, after a short pause, asks the kernel to "generate": it reads the scales and settings
// traits and answers with the continuation with and without the steering, shown side by side. While the kernel
// works, newer requests replace older waiting ones (one generation per burst). The kernel checks every value;
// the ranges of the settings come down in the read-only `limits` trait. The prompt box (lib/prompt.ts) redraws the
// view from the kernel's new prompt, which generates again. Python side: interpwidgets/widgets/steering.py.

import "../lib/base.css";
import "./features/features.css";
import "./steering.css";
import type { RenderProps } from "../lib/anywidget";
import { codeBox } from "../lib/code";
import { h, select, setChildren } from "../lib/dom";
import { formatNumber, quoteToken } from "../lib/format";
import { Requester } from "../lib/messaging";
import { type PromptSlot, type PromptTraits, withPrompt } from "../lib/prompt";
import { connectSelection } from "../lib/selection";
import { control, createShell } from "../lib/shell";
import { tokenFromEvent, tokenSpan } from "../lib/tokens";
import { type Firing, clerpSpan, denseBadge, firingText, integerInput, withClerp } from "./features/views";

const DEBOUNCE_MS = 250;
const SLIDER_STEPS = 200;

interface Row {
  label: string;
  hook: string;
  limit: number;
  feature: number | null;
  source: string | null;
  layer: number | null;
  /** The feature's label (null for a user's direction or an unlabelled feature). */
  clerp: string | null;
  /** How often the feature fires (null for a user's direction). */
  firing: Firing | null;
}

type Setting = "max_new_tokens" | "temperature" | "seed";

interface Traits extends PromptTraits {
  tokens: string[];
  hooks: string[];
  sizes: number[];
  rows: Row[];
  limits: Record<Setting, [number, number]>;
  samplings: string[];
  scales: number[];
  max_new_tokens: number;
  sampling: string;
  temperature: number;
  seed: number;
}

interface Generation {
  description: string;
  /** The Python calls that reproduce both continuations. */
  code: string;
  baseline: string[];
  steered: string[];
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function readGeneration(result: Record<string, unknown>): Generation {
  if (!isStrings(result.baseline) || !isStrings(result.steered)) throw new TypeError("the generation lacks its tokens");
  return { description: String(result.description), baseline: result.baseline, steered: result.steered, code: String(result.code ?? "") };
}

async function render({ model, el, signal, host }: RenderProps<Traits>, prompt: PromptSlot): Promise<void> {
  const tokens = model.get("tokens");
  const hooks = model.get("hooks");
  const sizes = model.get("sizes");
  const limits = model.get("limits");
  const shell = createShell(el, "Steering", "iw-steering", signal, () => undefined);
  const requester = new Requester(model, shell.status, signal, shell.root);
  const promptRow = prompt.row(requester);
  if (promptRow) shell.toolbar.before(promptRow);
  const selection = await connectSelection(model, host, signal);

  let rows = model.get("rows");
  let scales = model.get("scales").slice();
  let timer: number | undefined;
  let shown: Generation | null = null;
  signal.addEventListener("abort", () => window.clearTimeout(timer));

  // ---- toolbar: generation settings (ranges from the kernel's limits), adding a feature
  const numberInput = (name: Setting, label: string, step: string) => {
    const [min, max] = limits[name];
    const input = h("input", { className: `iw-number iw-${name}`, attrs: { type: "number", min: String(min), max: String(max), step, "aria-label": label } });
    input.value = String(model.get(name));
    return input;
  };
  const settingInputs: Record<Setting, HTMLInputElement> = {
    max_new_tokens: numberInput("max_new_tokens", "new tokens", "1"),
    temperature: numberInput("temperature", "temperature", "any"),
    seed: numberInput("seed", "seed", "1"),
  };
  const sampling = select(model.get("samplings").map((name) => [name, name]), model.get("sampling"), "sampling");
  const addHook = select(hooks.map((name) => [name, name]), hooks[0], "SAE");
  const addFeature = integerInput(selection.get("feature") ?? 0, 0, sizes[0] - 1, "feature to add");
  const addButton = h("button", { className: "iw-button iw-add" }, "add slider");
  const generateButton = h("button", { className: "iw-button iw-generate", title: "generate both continuations now (moving a slider also does)" }, "generate");
  const temperatureControl = control("T", settingInputs.temperature);
  const seedControl = control("seed", settingInputs.seed);
  shell.toolbar.append(control("New tokens", settingInputs.max_new_tokens), control("Decoding", sampling), temperatureControl,
    seedControl, generateButton, h("span", { className: "iw-separator" }), control("SAE", addHook), control("feature", addFeature), addButton);

  const slidersBox = h("div", { className: "iw-sliders", attrs: { role: "group", "aria-label": "steering scales" } });
  const description = h("div", { className: "iw-description iw-hint" });
  const baselineBox = h("div", { className: "iw-generation iw-baseline iw-tokens" });
  const steeredBox = h("div", { className: "iw-generation iw-steered iw-tokens" });
  const codeSlot = h("div", { className: "iw-code-slot" });
  shell.body.append(
    h("div", { className: "iw-steering-main" }, slidersBox, description,
      h("div", { className: "iw-columns" },
        h("div", {}, h("div", { className: "iw-section-title" }, "without steering"), baselineBox),
        h("div", {}, h("div", { className: "iw-section-title" }, "steered"), steeredBox)), codeSlot));
  setChildren(shell.footer, h("span", { className: "iw-hint" },
    "Scales multiply each direction (a feature's decoder row); slider ends: twice the activation's typical norm. Changed tokens are marked."));

  function updateSettings(): void {
    const sample = sampling.value === "sample";
    temperatureControl.hidden = !sample;
    seedControl.hidden = !sample;
    addFeature.max = String(sizes[hooks.indexOf(addHook.value)] - 1);
  }

  // ---- sliders
  function buildSliders(): void {
    if (!rows.length) {
      setChildren(slidersBox, h("div", { className: "iw-hint" }, "No directions yet: add an SAE feature above."));
      return;
    }
    setChildren(slidersBox, ...rows.map((row, index) => {
      // the slider moves over integer positions -SLIDER_STEPS..SLIDER_STEPS, so both ends are reached exactly: a
      // decimal step from -limit (10.4 / 200 = 0.052000000000000005) stops one step short of +limit
      const step = row.limit / SLIDER_STEPS;
      const slider = h("input", { className: "iw-slider", attrs: {
        type: "range", min: String(-SLIDER_STEPS), max: String(SLIDER_STEPS), step: "1",
        "aria-label": `scale of ${row.label}`, "data-index": String(index),
      } });
      slider.value = String(Math.round((scales[index] ?? 0) / step));
      const value = h("span", { className: "iw-scale-value" }, formatNumber(scales[index] ?? 0, step));
      const reset = h("button", { className: "iw-button iw-reset", attrs: { "aria-label": `reset ${row.label}` } }, "0");
      const remove = h("button", { className: "iw-button iw-remove", attrs: { "aria-label": `remove ${row.label}` } }, "\u00d7");
      slider.addEventListener("input", () => {
        const scale = Number((Number(slider.value) * step).toPrecision(12)); // position 0 is 0, the ends are +-limit
        scales[index] = Math.max(-row.limit, Math.min(row.limit, scale));
        value.textContent = formatNumber(scales[index], step);
        schedule();
      });
      reset.addEventListener("click", () => {
        slider.value = "0";
        scales[index] = 0;
        value.textContent = "0";
        schedule();
      });
      remove.addEventListener("click", () => void requester.fetch("remove", { index }, { key: "rows" }));
      const label = h("span", { className: "iw-row-label",
        title: withClerp(`added at ${row.hook}${row.firing ? `; the feature ${firingText(row.firing)}` : ""}`, row.clerp) }, row.label);
      if (row.feature !== null) {
        label.classList.add("iw-linkable");
        label.addEventListener("click", () => selection.set({ feature: row.feature, layer: row.layer }));
      }
      return h("div", { className: "iw-slider-row" }, h("span", { className: "iw-row-name" }, label, clerpSpan(row.clerp), denseBadge(row.firing) ?? ""),
        slider, value, reset, remove);
    }));
  }

  // ---- generation (debounced, coalesced while the kernel is busy): write the scales, then ask with the bare verb
  function schedule(): void {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void generate(), DEBOUNCE_MS);
  }

  async function generate(): Promise<void> {
    model.set("scales", scales.slice());
    model.save_changes();
    const generation = await requester.fetch("generate", {}, { key: "generate", decode: readGeneration });
    if (generation) show(generation);
  }

  function show(generation: Generation): void {
    shown = generation;
    const prompt = () => h("span", { className: "iw-prompt-tokens" }, ...tokens.map((token, i) => tokenSpan(token, i)));
    const continuation = (list: string[], other: string[] | null) => list.map((token, i) => {
      const span = tokenSpan(token, tokens.length + i);
      span.classList.add("iw-new");
      if (other && other[i] !== token) span.classList.add("iw-diff");
      return span;
    });
    setChildren(description, generation.description);
    setChildren(baselineBox, prompt(), ...continuation(generation.baseline, null));
    setChildren(steeredBox, prompt(), ...continuation(generation.steered, generation.baseline));
    setChildren(codeSlot, codeBox(generation.code));
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

  // ---- events: a setting goes to the kernel as a trait (it refuses a value out of range and puts the old one back)
  for (const name of Object.keys(settingInputs) as Setting[]) {
    const input = settingInputs[name];
    input.addEventListener("change", () => {
      const value = Number(input.value);
      if (input.value.trim() === "" || !Number.isFinite(value)) {
        input.value = String(model.get(name));
        return;
      }
      model.set(name, value);
      model.save_changes();
      schedule();
    });
    model.on(`change:${name}`, () => { input.value = String(model.get(name)); });
  }
  sampling.addEventListener("change", () => {
    model.set("sampling", sampling.value);
    model.save_changes();
    updateSettings();
    schedule();
  });
  model.on("change:sampling", () => { sampling.value = model.get("sampling"); updateSettings(); });
  addHook.addEventListener("change", updateSettings);
  generateButton.addEventListener("click", () => {
    window.clearTimeout(timer);
    void generate();
  });
  addButton.addEventListener("click", () => void requester.fetch("add", { hook: addHook.value, feature: Number(addFeature.value) }, { key: "rows" }));
  model.on("change:rows", () => {
    rows = model.get("rows");
    scales = model.get("scales").slice();
    buildSliders();
    schedule();
  });
  model.on("change:scales", () => {
    const next = model.get("scales");
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

export default { render: withPrompt(render) };
