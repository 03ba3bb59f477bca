// Tokens as text nodes: a token is data, never markup.

import { h } from "./dom";
import { displayToken } from "./format";

/** A span showing one token (whitespace made visible), carrying its position in `data-index`. */
export function tokenSpan(token: string, index: number): HTMLSpanElement {
  const span = h("span", { className: "iw-token" }, displayToken(token));
  span.dataset.index = String(index);
  return span;
}

/** The token span an event happened on (inside `container`), or null. */
export function tokenFromEvent(event: Event, container: Element): { span: HTMLElement; index: number } | null {
  const target = event.target instanceof Element ? event.target.closest<HTMLElement>(".iw-token") : null;
  if (!target || !container.contains(target) || target.dataset.index === undefined) return null;
  return { span: target, index: Number(target.dataset.index) };
}
