// The frame every widget draws in: title, toolbar, body, footer (legends), status line and tooltip.

import { h } from "./dom";
import { Status } from "./status";
import { type Theme, onThemeChange, readTheme } from "./theme";
import { Tooltip } from "./tooltip";

export interface Shell {
  root: HTMLDivElement;
  toolbar: HTMLDivElement;
  body: HTMLDivElement;
  footer: HTMLDivElement;
  status: Status;
  tooltip: Tooltip;
  theme(): Theme;
}

/** Builds the frame inside `el`; `onTheme` runs when JupyterLab switches between light and dark. */
export function createShell(el: HTMLElement, title: string, widgetClass: string, signal: AbortSignal, onTheme: () => void): Shell {
  const root = h("div", { className: `iw-root ${widgetClass}` });
  const toolbar = h("div", { className: "iw-toolbar" });
  const body = h("div", { className: "iw-body" });
  const footer = h("div", { className: "iw-footer" });
  const status = new Status(root);
  root.append(h("div", { className: "iw-title" }, title), toolbar, body, footer, status.el);
  el.replaceChildren(root);
  const tooltip = new Tooltip(root);
  let theme: Theme | null = null;
  onThemeChange(() => {
    theme = null;
    onTheme();
  }, signal);
  signal.addEventListener("abort", () => el.replaceChildren());
  return { root, toolbar, body, footer, status, tooltip, theme: () => (theme ??= readTheme(root)) };
}

/** A labelled toolbar control. */
export function control(label: string, input: HTMLElement): HTMLLabelElement {
  return h("label", { className: "iw-control" }, h("span", {}, label), input);
}
