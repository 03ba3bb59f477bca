// The widget's status line: what the kernel is working on, and errors the kernel answered with.
//
// The root element carries data-iw-status="idle" | "busy" so scripts and tests can wait for quiet.

import { h, setChildren } from "./dom";

export class Status {
  readonly el: HTMLDivElement;
  private readonly activity: HTMLSpanElement;
  private readonly error: HTMLDivElement;

  constructor(private readonly root: HTMLElement) {
    this.activity = h("span", { className: "iw-activity", attrs: { "aria-live": "polite" } });
    this.error = h("div", { className: "iw-error", attrs: { role: "alert" } });
    this.error.hidden = true;
    this.el = h("div", { className: "iw-status" }, this.activity, this.error);
    this.idle();
  }

  busy(what: string): void {
    this.root.dataset.iwStatus = "busy";
    setChildren(this.activity, h("span", { className: "iw-spinner", attrs: { "aria-hidden": "true" } }), `computing ${what}\u2026`);
  }

  idle(): void {
    this.root.dataset.iwStatus = "idle";
    setChildren(this.activity);
  }

  showError(message: string): void {
    const dismiss = h("button", { className: "iw-button iw-dismiss", attrs: { "aria-label": "dismiss" } }, "\u00d7");
    dismiss.addEventListener("click", () => this.clearError());
    setChildren(this.error, h("span", {}, message), dismiss);
    this.error.hidden = false;
  }

  clearError(): void {
    this.error.hidden = true;
    setChildren(this.error);
  }
}
