// Building DOM nodes without HTML strings: text always goes in as text nodes, never through innerHTML.

export type Child = Node | string | number | null | undefined | false;

export interface Props {
  className?: string;
  title?: string;
  attrs?: Record<string, string>;
  /** Inline style properties, e.g. `{ width: "40%", gridTemplateColumns: "1fr 1fr" }`. */
  style?: Partial<CSSStyleDeclaration>;
}

/** `h("div", {className: "x"}, "text", child)`: an element whose string children become text nodes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.className) el.className = props.className;
  if (props.title) el.title = props.title;
  for (const [name, value] of Object.entries(props.attrs ?? {})) el.setAttribute(name, value);
  Object.assign(el.style, props.style ?? {});
  append(el, ...children);
  return el;
}

/** Appends children, turning strings and numbers into text nodes. */
export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
}

/** Replaces all children of `parent`. */
export function setChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

/** A <select> with the given (value, label) options. */
export function select(options: [string, string][], value: string, label: string): HTMLSelectElement {
  const el = h("select", { className: "iw-select", attrs: { "aria-label": label } });
  for (const [optionValue, optionLabel] of options) {
    const option = h("option", {}, optionLabel);
    option.value = optionValue;
    el.appendChild(option);
  }
  el.value = value;
  return el;
}
