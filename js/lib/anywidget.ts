// The parts of anywidget's front-end API that our widgets use (anywidget >= 0.11).

export type Listener = (...args: any[]) => void;

/** A widget model as anywidget hands it to `render`: traits by name, custom messages, events. */
export interface AnyModel {
  get(name: string): unknown;
  set(name: string, value: unknown): void;
  save_changes(): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[]): void;
  on(event: string, listener: Listener): void;
  off(event?: string | null, listener?: Listener | null): void;
}

/** Resolves references to other widget models ("anywidget:<model id>"); listeners are removed with the view. */
export interface Host {
  getModel(ref: string): Promise<AnyModel>;
}

export interface RenderProps {
  model: AnyModel;
  el: HTMLElement;
  signal: AbortSignal;
  host?: Host;
}
