// The shared selection (token, layer, head, feature): a separate widget model that linked widgets share.
//
// Python: interpwidgets/widgets/selection.py. Each widget's `selection` trait holds a reference
// "anywidget:<model id>"; setting a key here updates every widget linked to the same selection, and Python.

import type { AnyModel, Host } from "./anywidget";

export type SelectionKey = "token" | "layer" | "head" | "feature";
const KEYS: SelectionKey[] = ["token", "layer", "head", "feature"];

export interface Selection {
  get(key: SelectionKey): number | null;
  set(values: Partial<Record<SelectionKey, number | null>>): void;
  /** Calls `listener` when any of the keys changes (also when the widget is linked to another selection). */
  onChange(listener: () => void): void;
}

export async function connectSelection(model: AnyModel<any>, host: Host | undefined, signal: AbortSignal): Promise<Selection> {
  const listeners: (() => void)[] = [];
  const notify = () => listeners.forEach((listener) => listener());
  let shared: AnyModel | null = null;

  const bind = async () => {
    const ref = model.get("selection");
    let next: AnyModel | null = null;
    try {
      next = typeof ref === "string" && host ? await host.getModel(ref) : null;
    } catch (error) {
      console.warn("interpwidgets: the shared selection is not available; this view works unlinked.", error);
    }
    if (signal.aborted) return;
    for (const key of KEYS) shared?.off(`change:${key}`, notify);
    shared = next;
    for (const key of KEYS) shared?.on(`change:${key}`, notify);
  };
  await bind();
  model.on("change:selection", () => void bind().then(notify));
  signal.addEventListener("abort", () => {
    for (const key of KEYS) shared?.off(`change:${key}`, notify);
  });

  return {
    get: (key) => {
      const value = shared?.get(key);
      return typeof value === "number" ? value : null;
    },
    set: (values) => {
      if (!shared) return;
      for (const [key, value] of Object.entries(values)) shared.set(key, value);
      shared.save_changes();
    },
    onChange: (listener) => listeners.push(listener),
  };
}
