// Copy as code: the Python call that reproduces a widget's outcome, shown as text with a copy button.
//
// Python records each action (interpwidgets/widgets/history.py) and sends its code with the reply, as "code";
// a widget shows it under the outcome:
//
//   import { codeBox } from "../lib/code";
//   const outcome = await requester.fetch("intervene", { cells });
//   if (outcome) setChildren(outcomePanel, ...drawn(outcome), codeBox(outcome.code));
//
// "copy" writes the code to the clipboard (navigator.clipboard) and, always, also when the clipboard is refused
// (an insecure context, a denied permission), into the page's copy target: a hidden
// <textarea class="iw-copy-target"> in the widget's root, whose root also gets data-iw-copied="<code>".

import "./code.css";
import { h } from "./dom";

const COPIED_FOR_MS = 1500;

/** A box showing `code` (as text, never HTML) with a copy button; null when there is no code to show. */
export function codeBox(code: unknown): HTMLDivElement | null {
  if (typeof code !== "string" || !code) return null;
  const text = h("pre", { className: "iw-code-text" }, code);
  const button = h("button", { className: "iw-button iw-copy", attrs: { "aria-label": "copy the Python code" } }, "copy");
  const box = h("div", { className: "iw-code" },
    h("div", { className: "iw-code-head" }, h("span", { className: "iw-hint" }, "Python"), button), text);
  let timer: ReturnType<typeof setTimeout> | undefined;
  button.addEventListener("click", () => {
    void copyText(box, code).then((clipboard) => {
      button.textContent = clipboard ? "copied" : "copied (to the page)";
      button.dataset.iwCopied = clipboard ? "clipboard" : "page";
      clearTimeout(timer);
      timer = setTimeout(() => { button.textContent = "copy"; }, COPIED_FOR_MS);
    });
  });
  return box;
}

/** Puts `code` in the copy target of the root around `from`, then on the clipboard; true if the clipboard took it. */
export async function copyText(from: Element, code: string): Promise<boolean> {
  const root = from.closest(".iw-root") ?? from;
  let target = root.querySelector<HTMLTextAreaElement>(":scope > textarea.iw-copy-target");
  if (!target) {
    target = h("textarea", { className: "iw-copy-target", attrs: { "aria-hidden": "true", tabindex: "-1", readonly: "" } });
    root.append(target);
  }
  target.value = code;
  root.setAttribute("data-iw-copied", code);
  try {
    await navigator.clipboard.writeText(code);
    return true;
  } catch {
    return false; // no clipboard API or permission: the copy target still holds it
  }
}
