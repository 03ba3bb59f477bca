// The parts of anywidget's front-end API that our widgets use (anywidget >= 0.11), typed over a widget's traits
// as @anywidget/types does: `AnyModel<Traits>` gives `get("scales")` the trait's own type.

export type Listener = (...args: any[]) => void;

/** A widget model as anywidget hands it to `render`: traits by name, custom messages, events. */
export interface AnyModel<T extends object = Record<string, unknown>> {
  get<K extends keyof T & string>(name: K): T[K];
  set<K extends keyof T & string>(name: K, value: T[K]): void;
  save_changes(): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[]): void;
  on(event: string, listener: Listener): void;
  off(event?: string | null, listener?: Listener | null): void;
}

/** Resolves references to other widget models ("anywidget:<model id>"); listeners are removed with the view. */
export interface Host {
  getModel(ref: string): Promise<AnyModel<any>>;
}

export interface RenderProps<T extends object = Record<string, unknown>> {
  model: AnyModel<T>;
  el: HTMLElement;
  signal: AbortSignal;
  host?: Host;
}
