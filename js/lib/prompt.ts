// The prompt box of a view that takes a prompt: type, press Enter (or "run"), the kernel retokenises and the view
// redraws. Python side: interpwidgets/widgets/prompting.py (`PromptBox`, one validation for every prompt).
//
// A view opts in by exporting `withPrompt(render)`: its render runs in a scope that is torn down and run again
// (fresh, from the new traits) whenever the kernel swaps the prompt (`prompt_version` changes), and it places
// `prompt.row(requester)` where the box goes:
//
//   async function render({ model, el, signal, host }: RenderProps<Traits>, prompt: PromptSlot) {
//     const shell = createShell(el, ...);
//     const requester = new Requester(model, shell.status, signal, shell.root);
//     shell.toolbar.before(prompt.row(requester) ?? "");
//     ...
//   }
//   export default { render: withPrompt(render) };
//
// Errors of the `prompt {text}` request (empty, too long, mostly unknown words) show in the widget's error box;
// the warning for a few unknown tokens (`prompt_warning`) shows under the box. Keys typed in the box stay in it:
// JupyterLab's notebook shortcuts ('a', 'b', 'dd', Shift+Enter) never see them.

import "./prompt.css";
import type { AnyModel, Listener, RenderProps } from "./anywidget";
import { codeBox } from "./code";
import { h } from "./dom";
import type { Requester } from "./messaging";

export interface PromptTraits {
  prompt_box: boolean;
  prompt_text: string;
  prompt_warning: string;
  prompt_version: number;
}

/** What a view rendered by `withPrompt` gets: the prompt row to place (null: no box and no warning). */
export interface PromptSlot {
  row(requester: Requester): HTMLDivElement | null;
}

interface PromptReply {
  text: string;
  code: string;
}

interface Carry {
  code: string | null; // the code of the prompt that made this mount
  focus: boolean; // the box had the focus when the prompt was sent
}

const SETTLE_MS = 800;

/** A model whose listeners are all removed, and whose sends are dropped, once `signal` aborts. */
export function scopedModel<T extends object>(model: AnyModel<T>, signal: AbortSignal): AnyModel<T> {
  const listeners: [string | null | undefined, Listener][] = [];
  signal.addEventListener("abort", () => {
    for (const [event, listener] of listeners) model.off(event, listener);
    listeners.length = 0;
  });
  return {
    get: (name) => model.get(name),
    set: (name, value) => model.set(name, value),
    save_changes: () => { if (!signal.aborted) model.save_changes(); },
    send: (content, callbacks, buffers) => { if (!signal.aborted) model.send(content, callbacks, buffers); },
    on: (event, listener) => {
      if (signal.aborted) return;
      listeners.push([event, listener]);
      model.on(event, listener);
    },
    off: (event, listener) => model.off(event, listener),
  };
}

/** `render` for a view that takes a prompt: it draws again, from the new traits, when the kernel swaps the prompt. */
export function withPrompt<T extends PromptTraits>(
  render: (props: RenderProps<T>, prompt: PromptSlot) => Promise<void>,
): (props: RenderProps<T>) => Promise<void> {
  return async (props: RenderProps<T>) => {
    const { model, el, signal } = props;
    let scope: AbortController | null = null;
    let sending = false; // this view sent the prompt: it redraws on the reply (which carries the code), not before

    const mount = async (carry: Carry): Promise<void> => {
      const height = el.offsetHeight;
      scope?.abort();
      if (signal.aborted) return;
      const controller = new AbortController();
      scope = controller;
      if (height) el.style.minHeight = `${height}px`; // the notebook does not jump while the new view draws
      const scoped = scopedModel(model, controller.signal);
      const slot: PromptSlot = {
        row: (requester) => promptRow(scoped, carry, async (text) => {
          sending = true;
          const reply = await requester.fetch<PromptReply>("prompt", { text }, { key: "prompt" });
          sending = false;
          if (reply && !controller.signal.aborted) await mount({ code: reply.code, focus: true });
          return reply !== null;
        }),
      };
      try {
        await render({ ...props, model: scoped, signal: controller.signal }, slot);
      } finally {
        setTimeout(() => { if (scope === controller) el.style.minHeight = ""; }, SETTLE_MS);
      }
    };

    const onVersion = () => { if (!sending) void mount({ code: null, focus: false }); };
    model.on("change:prompt_version", onVersion);
    signal.addEventListener("abort", () => {
      model.off("change:prompt_version", onVersion);
      scope?.abort();
    });
    await mount({ code: null, focus: false });
  };
}

/** Keeps the keys typed in `input` to it (JupyterLab's notebook shortcuts, command mode 'a', 'b', 'dd' and
 * Shift+Enter, never see them) and calls `onEnter` on Enter. Use it for every text or number box in a view. */
export function ownKeys(input: HTMLInputElement, onEnter: () => void): void {
  for (const type of ["keydown", "keypress", "keyup"] as const) {
    input.addEventListener(type, (event) => {
      event.stopPropagation();
      if (type === "keydown" && event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        onEnter();
      }
    });
  }
}

/** The box (input + run), the unknown-token warning and the last prompt's code; null when there is nothing to show. */
function promptRow(model: AnyModel<PromptTraits>, carry: Carry, send: (text: string) => Promise<boolean>): HTMLDivElement | null {
  const hasBox = model.get("prompt_box");
  const warningText = model.get("prompt_warning");
  if (!hasBox && !warningText) return null;
  const warning = h("div", { className: "iw-prompt-warning", attrs: { role: "status" } }, warningText);
  warning.hidden = !warningText;
  const container = h("div", { className: "iw-prompt" });
  if (hasBox) {
    const input = h("input", {
      className: "iw-prompt-input",
      attrs: { type: "text", "aria-label": "prompt", spellcheck: "false", autocomplete: "off", placeholder: "type a prompt, press Enter" },
    });
    input.value = model.get("prompt_text");
    const run = h("button", { className: "iw-button iw-prompt-run", attrs: { type: "button", title: "run this prompt (Enter)" } }, "run");
    const submit = async () => {
      input.disabled = run.disabled = true;
      const ok = await send(input.value);
      if (!ok) { // refused (the error box says why) or superseded: the box stays as typed, to fix
        input.disabled = run.disabled = false;
        input.focus();
      }
    };
    ownKeys(input, () => void submit());
    run.addEventListener("click", () => void submit());
    container.append(h("div", { className: "iw-prompt-row" }, h("span", { className: "iw-hint" }, "Prompt"), input, run));
    if (carry.focus) setTimeout(() => input.focus({ preventScroll: true }), 0);
  }
  container.append(warning);
  const code = codeBox(carry.code);
  if (code) container.append(code);
  return container;
}
