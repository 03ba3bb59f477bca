// TokenFeatures: a prompt's tokens coloured by one SAE feature. Hover a token: its activation and strongest
// features; click a token: the kernel lists its strongest features; click a feature: recolour by it; the
// apply button ablates or steers the feature in the kernel and shows the next-token predictions before and
// after. The dictionary, feature, action and alpha are traits written here; the requests are verbs that the
// kernel answers from them. Built from a model, the view has a prompt box (lib/prompt.ts): a new prompt redraws
// the whole view from the kernel's new tokens. Python side: interpwidgets/widgets/token_features.py.

import "../lib/base.css";
import "./features/features.css";
import "./token_features.css";
import type { RenderProps } from "../lib/anywidget";
import { decodeInt32 } from "../lib/buffers";
import { codeBox } from "../lib/code";
import { legend, sequentialScale } from "../lib/colour";
import { h, select, setChildren } from "../lib/dom";
import { formatNumber, quoteToken } from "../lib/format";
import { Requester } from "../lib/messaging";
import { type PromptSlot, type PromptTraits, ownKeys, withPrompt } from "../lib/prompt";
import { connectSelection } from "../lib/selection";
import { control, createShell } from "../lib/shell";
import { tokenFromEvent, tokenSpan } from "../lib/tokens";
import {
  type Firing, barList, clerpSpan, colourSpan, denseBadge, firingText, integerInput, onFeatureInput, withClerp,
} from "./features/views";
import { type DictionaryTraits, type Ranked, decodeFloats, decodeRanked } from "./features/wire";

interface Traits extends DictionaryTraits, PromptTraits {
  tokens: string[];
  top_k: number;
  hook: string;
  feature: number;
  action: "ablate" | "steer";
  alpha: number;
  limits: { alpha: [number, number] };
}

interface TopFeatures {
  hook: string;
  k: number;
  indices: Int32Array; // [n, k]
  values: Float32Array; // [n, k]
  labels: Record<string, string>; // feature index -> its label, for those that have one
}

interface Activations {
  key: string;
  values: Float32Array; // [n]
  max: number;
  firing: Firing;
  label: string | null;
}

interface TokenList {
  hook: string;
  position: number;
  indices: Int32Array;
  values: Float32Array;
  promptMax: Float32Array;
  firings: Firing[];
  labels: string[]; // "" where a feature has no label
  code: string;
}

interface Outcome {
  description: string;
  position: number;
  activation: number;
  before: Ranked;
  after: Ranked;
  /** The Python call that reproduces the predictions after. */
  code: string;
}

async function render({ model, el, signal, host }: RenderProps<Traits>, prompt: PromptSlot): Promise<void> {
  const tokens = model.get("tokens");
  const n = tokens.length;
  const hooks = model.get("hooks");
  const labels = model.get("labels");
  const sizes = model.get("sizes");
  const layers = model.get("layers");
  const shell = createShell(el, `Token features \u00b7 ${n} tokens`, "iw-token-features", signal, () => colour());
  const requester = new Requester(model, shell.status, signal, shell.root);
  const promptRow = prompt.row(requester);
  if (promptRow) shell.toolbar.before(promptRow);
  const selection = await connectSelection(model, host, signal);

  let hook = model.get("hook");
  let feature = model.get("feature");
  let pinned: number | null = null;
  let activations: Activations | null = null;
  const topCache = new Map<string, TopFeatures>();
  const at = () => hooks.indexOf(hook);
  const dSae = () => sizes[at()];
  const keyOf = () => `${hook}#${feature}`;
  const nameOf = () => `${labels[at()]}/${feature}`;

  // ---- toolbar
  const hookSelect = select(hooks.map((name, i) => [name, labels[i]]), hook, "dictionary");
  const featureInput = integerInput(feature, 0, dSae() - 1, "feature");
  const actionSelect = select([["ablate", "ablate"], ["steer", "steer by \u03b1"]], model.get("action"), "action");
  const [alphaMin, alphaMax] = model.get("limits").alpha;
  const alphaInput = h("input", { className: "iw-number iw-alpha", attrs: {
    type: "number", step: "any", min: String(alphaMin), max: String(alphaMax), "aria-label": "alpha" } });
  alphaInput.value = String(model.get("alpha"));
  let alphaError: string | null = null; // what is wrong with the alpha box, if anything: nothing is applied then
  const applyButton = h("button", { className: "iw-button iw-apply" }, "apply");
  shell.toolbar.append(control("SAE", hookSelect), control("Feature", featureInput), control("Intervention", actionSelect),
    control("\u03b1", alphaInput), applyButton);

  // ---- body: tokens and the clicked token's features | the intervention's outcome
  const spans = tokens.map((token, index) => tokenSpan(token, index));
  const text = h("div", { className: "iw-tokens iw-text", attrs: { role: "list", "aria-label": "prompt tokens" } }, ...spans);
  const caption = h("div", { className: "iw-caption" });
  const tokenPanel = h("div", { className: "iw-token-panel" },
    h("div", { className: "iw-hint" }, "Click a token to list its strongest features."));
  const outcomePanel = h("div", { className: "iw-panel iw-outcome", attrs: { "aria-live": "polite" } },
    h("div", { className: "iw-hint" }, "Apply an intervention to see the next-token predictions change."));
  shell.body.append(h("div", { className: "iw-main" }, caption, text, tokenPanel), outcomePanel);

  function updateControls(): void {
    featureInput.max = String(dSae() - 1);
    featureInput.value = String(feature);
    hookSelect.value = hook;
    const steer = actionSelect.value === "steer";
    alphaInput.disabled = !steer;
    applyButton.disabled = steer && alphaError !== null;
    const what = steer ? `steer ${nameOf()} by ${alphaError === null ? alphaInput.value : "?"}` : `ablate ${nameOf()}`;
    applyButton.textContent = steer && alphaError !== null ? "fix \u03b1 to apply"
      : `${what} \u00b7 predict after ${pinned === null ? "the last token" : `token ${pinned}`}`;
  }

  // ---- drawing
  function colour(): void {
    updateControls();
    spans.forEach((span, index) => span.classList.toggle("iw-pinned", index === pinned));
    if (!activations || activations.key !== keyOf()) {
      setChildren(caption, `feature ${nameOf()}: loading\u2026`);
      return;
    }
    const scale = sequentialScale(shell.theme(), activations.max, `activation of ${nameOf()}`);
    spans.forEach((span, index) => colourSpan(span, scale, activations!.values[index]));
    const firing = activations.firing;
    setChildren(caption, `feature ${nameOf()} `, clerpSpan(activations.label), activations.max > 0
      ? ` \u00b7 max ${formatNumber(activations.max)} on this prompt`
      : " is not active on this prompt",
    h("span", { className: "iw-firing iw-hint" }, ` \u00b7 ${firingText(firing)}`), denseBadge(firing) ?? "");
    setChildren(shell.footer, legend(scale), h("span", { className: "iw-hint" }, "hover: values \u00b7 click a token: its features"));
  }

  // ---- kernel requests (verbs: the kernel reads hook, feature, action and alpha from the traits)
  async function loadActivations(): Promise<void> {
    colour();
    const reply = await requester.fetch("activations", {}, {
      key: "activations",
      decode: async (result: { hook: string; feature: number; values: unknown; max: number; firing: Firing; label: unknown }): Promise<Activations> => ({
        key: `${result.hook}#${result.feature}`, values: await decodeFloats(result.values, n), max: Number(result.max),
        firing: result.firing, label: typeof result.label === "string" ? result.label : null,
      }),
    });
    if (!reply || reply.key !== keyOf()) return;
    activations = reply;
    colour();
  }

  async function loadTop(): Promise<void> {
    if (topCache.has(hook)) return;
    const reply = await requester.fetch("features", {}, {
      key: "features",
      decode: async (result: { hook: string; indices: unknown; values: unknown; labels: Record<string, string> }): Promise<TopFeatures> => {
        const indices = decodeInt32(result.indices);
        if (indices.shape.length !== 2 || indices.shape[0] !== n) throw new RangeError(`top features of shape [${indices.shape}]`);
        return { hook: result.hook, k: indices.shape[1], indices: indices.data, values: await decodeFloats(result.values, indices.data.length),
                 labels: result.labels ?? {} };
      },
    });
    if (reply) topCache.set(reply.hook, reply);
  }

  async function loadToken(position: number): Promise<void> {
    setChildren(tokenPanel, h("div", { className: "iw-hint" }, `${quoteToken(tokens[position], position)}: loading\u2026`));
    const reply = await requester.fetch("token", { position }, {
      key: "token",
      decode: async (result: { hook: string; position: number; indices: unknown; values: unknown; prompt_max: unknown;
                               firings: Firing[]; labels: string[]; code: string }): Promise<TokenList> => {
        const indices = decodeInt32(result.indices).data;
        if (!Array.isArray(result.firings) || result.firings.length !== indices.length) throw new RangeError("one density per feature expected");
        if (!Array.isArray(result.labels) || result.labels.length !== indices.length) throw new RangeError("one label per feature expected");
        return {
          hook: result.hook, position: result.position, indices, code: result.code, firings: result.firings, labels: result.labels,
          values: await decodeFloats(result.values, indices.length), promptMax: await decodeFloats(result.prompt_max, indices.length),
        };
      },
    });
    if (reply && pinned === reply.position && hook === reply.hook) showTokenFeatures(reply);
  }

  function showTokenFeatures({ position, indices, values, promptMax, firings, labels: clerps, code }: TokenList): void {
    const chips = Array.from(indices, (index, i) => {
      const chip = h("button", {
        className: `iw-feature-chip${index === feature ? " iw-selected" : ""}${firings[i].dense ? " iw-dense-feature" : ""}`,
        attrs: { "data-feature": String(index), "aria-pressed": String(index === feature) },
        title: `${withClerp(`feature ${index}`, clerps[i])}: ${formatNumber(values[i])} here, max ${formatNumber(promptMax[i])} on the prompt; `
          + firingText(firings[i]),
      }, `#${index} `, clerpSpan(clerps[i]), h("span", { className: "iw-chip-value" }, formatNumber(values[i])),
      denseBadge(firings[i], true) ?? "");
      chip.addEventListener("click", () => setFeature(index, true));
      return chip;
    });
    setChildren(tokenPanel,
      h("div", { className: "iw-section-title" }, `Strongest features at ${quoteToken(tokens[position], position)} (${labels[at()]})`),
      chips.length ? h("div", { className: "iw-chips" }, ...chips) : h("div", { className: "iw-hint" }, "no feature is active here"),
      codeBox(code));
  }

  async function intervene(): Promise<void> {
    const outcome = await requester.fetch("intervene", { position: pinned ?? n - 1 }, {
      key: "intervene",
      decode: async (result: { description: string; position: number; activation: number; before: unknown; after: unknown; code: string }): Promise<Outcome> => ({
        description: String(result.description), position: Number(result.position), activation: Number(result.activation),
        code: result.code,
        before: await decodeRanked(result.before, "probs"), after: await decodeRanked(result.after, "probs"),
      }),
    });
    if (!outcome) return;
    const { before, after, position } = outcome;
    const top = Math.max(...before.values, ...after.values);
    setChildren(outcomePanel,
      h("div", { className: "iw-outcome-title" }, outcome.description),
      h("div", { className: "iw-hint" },
        `next token after ${quoteToken(tokens[position], position)}; the feature's activation there: ${formatNumber(outcome.activation)}`),
      h("div", { className: "iw-tops" },
        barList("before: probability", before, top, "iw-top-before"),
        barList("after", after, top, "iw-top-after")),
      codeBox(outcome.code));
  }

  // ---- state changes: traits first, then the verbs that read them
  function setFeature(next: number, share: boolean): void {
    if (next === feature) return;
    feature = next;
    model.set("feature", feature);
    model.save_changes();
    if (share) selection.set({ feature, layer: layers[at()] });
    tokenPanel.querySelectorAll<HTMLElement>(".iw-feature-chip").forEach((chip) => {
      const on = Number(chip.dataset.feature) === feature;
      chip.classList.toggle("iw-selected", on);
      chip.setAttribute("aria-pressed", String(on));
    });
    void loadActivations();
  }

  function setHook(next: string, share: boolean): void {
    if (next === hook) return;
    hook = next;
    if (feature >= dSae()) feature = 0;
    model.set("hook", hook);
    model.set("feature", feature);
    model.save_changes();
    if (share) selection.set({ layer: layers[at()], feature });
    void loadActivations();
    void loadTop();
    if (pinned !== null) void loadToken(pinned);
  }

  function pin(position: number | null, share: boolean): void {
    pinned = position;
    if (share) selection.set({ token: pinned });
    colour();
    if (pinned !== null) void loadToken(pinned);
    else setChildren(tokenPanel, h("div", { className: "iw-hint" }, "Click a token to list its strongest features."));
  }

  // ---- events
  text.addEventListener("mouseover", (event) => {
    const hit = tokenFromEvent(event, text);
    if (!hit) return;
    const lines = [quoteToken(tokens[hit.index], hit.index)];
    if (activations?.key === keyOf()) lines.push(`${nameOf()}: ${formatNumber(activations.values[hit.index])}`);
    const top = topCache.get(hook);
    if (top) {
      lines.push("strongest features here:");
      for (let j = 0; j < top.k; j++) {
        const value = top.values[hit.index * top.k + j];
        const index = top.indices[hit.index * top.k + j];
        if (value > 0) lines.push(withClerp(`  #${index}  ${formatNumber(value)}`, top.labels[String(index)]));
      }
    }
    shell.tooltip.show(event as MouseEvent, lines);
  });
  text.addEventListener("mouseleave", () => shell.tooltip.hide());
  text.addEventListener("click", (event) => {
    const hit = tokenFromEvent(event, text);
    if (hit) pin(pinned === hit.index ? null : hit.index, true);
  });
  hookSelect.addEventListener("change", () => setHook(hookSelect.value, true));
  onFeatureInput(featureInput, dSae, () => feature, shell.status, (next) => setFeature(next, true));
  actionSelect.addEventListener("change", () => {
    model.set("action", actionSelect.value as Traits["action"]);
    model.save_changes();
    updateControls();
  });
  /** Checks the alpha box against the kernel's limits; a valid value becomes the trait, a bad one is kept in the
   * box (marked) with the message, and nothing is applied until it is fixed. */
  function readAlpha(report: boolean): void {
    const text = alphaInput.value.trim();
    const alpha = Number(text);
    const range = `from ${String(alphaMin).replace("-", "\u2212")} to ${alphaMax}`;
    alphaError = text === "" || !Number.isFinite(alpha) ? `\u03b1 must be a number ${range}; the box is empty or not a number`
      : alpha < alphaMin || alpha > alphaMax ? `\u03b1 must be a number ${range}, got ${text}` : null;
    alphaInput.setAttribute("aria-invalid", String(alphaError !== null));
    if (alphaError === null && alpha !== model.get("alpha")) {
      model.set("alpha", alpha);
      model.save_changes();
    }
    if (alphaError !== null && report) shell.status.showError(`${alphaError}: nothing is applied until it is fixed`);
    updateControls();
  }
  alphaInput.addEventListener("input", () => readAlpha(false));
  alphaInput.addEventListener("change", () => readAlpha(true));
  ownKeys(alphaInput, () => readAlpha(true));
  applyButton.addEventListener("click", () => {
    if (actionSelect.value === "steer" && alphaError !== null) return shell.status.showError(`${alphaError}: nothing is applied`);
    void intervene();
  });

  model.on("change:hook", () => setHook(model.get("hook"), true));
  // a change the model brings was shared by whoever made it: echoing it into the selection raced newer choices
  model.on("change:feature", () => setFeature(model.get("feature"), false));
  model.on("change:action", () => { actionSelect.value = model.get("action"); updateControls(); });
  model.on("change:alpha", () => { alphaInput.value = String(model.get("alpha")); readAlpha(false); });
  selection.onChange(() => {
    const token = selection.get("token");
    const nextPinned = token !== null && token < n ? token : null;
    if (nextPinned !== pinned) pin(nextPinned, false);
    const next = selection.get("feature");
    if (next !== null && next < dSae() && next !== feature) setFeature(next, false);
  });

  void loadActivations();
  void loadTop();
}

export default { render: withPrompt(render) };
