// One tooltip per widget: plain text lines positioned next to the pointer, kept inside the widget.
//
// It never outlives what it describes: it hides when the pointer leaves the widget, when the element it was shown
// for leaves the page (a redraw replaced it), and when the view calls `hide()` on a redraw. It is placed inside
// the widget's box (above the pointer when there is no room below), so showing it never grows the page.

import { h, setChildren } from "./dom";

const GAP = 14;

export class Tooltip {
  readonly el: HTMLDivElement;
  private anchor: Element | null = null;
  private readonly watcher: MutationObserver;

  constructor(private readonly root: HTMLElement) {
    this.el = h("div", { className: "iw-tooltip", attrs: { role: "tooltip" } });
    this.el.hidden = true;
    root.appendChild(this.el);
    root.addEventListener("mouseleave", () => this.hide());
    // a redraw under the pointer removes the element the text was about: the text is stale, hide it
    this.watcher = new MutationObserver(() => {
      if (this.anchor && !this.anchor.isConnected) this.hide();
    });
    this.watcher.observe(root, { childList: true, subtree: true });
  }

  show(event: MouseEvent, lines: string[]): void {
    this.anchor = event.target instanceof Element ? event.target : null;
    setChildren(this.el, ...lines.map((line) => h("div", {}, line)));
    this.el.hidden = false;
    const box = this.root.getBoundingClientRect();
    const x = event.clientX - box.left + GAP;
    const y = event.clientY - box.top + GAP;
    const maxX = Math.max(0, box.width - this.el.offsetWidth - 4);
    const height = this.el.offsetHeight;
    const above = event.clientY - box.top - GAP - height;
    const top = y + height <= box.height - 2 ? y : Math.max(0, above);
    this.el.style.left = `${Math.min(x, maxX)}px`;
    this.el.style.top = `${top}px`;
  }

  hide(): void {
    this.anchor = null;
    if (!this.el.hidden) this.el.hidden = true;
  }
}
