// One tooltip per widget: plain text lines positioned next to the pointer, clamped inside the widget.

import { h, setChildren } from "./dom";

export class Tooltip {
  readonly el: HTMLDivElement;

  constructor(private readonly root: HTMLElement) {
    this.el = h("div", { className: "iw-tooltip", attrs: { role: "tooltip" } });
    this.el.hidden = true;
    root.appendChild(this.el);
  }

  show(event: MouseEvent, lines: string[]): void {
    setChildren(this.el, ...lines.map((line) => h("div", {}, line)));
    this.el.hidden = false;
    const box = this.root.getBoundingClientRect();
    const x = event.clientX - box.left + 14;
    const y = event.clientY - box.top + 14;
    const maxX = Math.max(0, box.width - this.el.offsetWidth - 4);
    this.el.style.left = `${Math.min(x, maxX)}px`;
    this.el.style.top = `${y}px`;
  }

  hide(): void {
    this.el.hidden = true;
  }
}
