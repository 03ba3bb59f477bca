// Requests to the kernel with ids, one at a time per view, and coalescing while busy.
//
// Protocol (Python side: interpwidgets/widgets/base.py):
//   front end -> kernel  {kind: "iw:request", id, method, params}
//   kernel -> front end  {kind: "iw:response", id, ok: true, result} + buffers
//                        {kind: "iw:response", id, ok: false, error}     (id is null when the request was unreadable)
// While a request is in flight, new requests wait; a new request with the same `key` as a waiting one replaces
// it (the replaced promise resolves "superseded"), so bursts of clicks cost one kernel call each.
//
// Scripting hook: dispatching a CustomEvent("iw-request", {detail: {method, params}}) on the widget's root
// element sends that request as-is (the kernel validates it like any other).

import type { AnyModel } from "./anywidget";
import { attachBuffers } from "./buffers";

/** Where a Requester reports its activity (the widget's status line). */
export interface StatusSink {
  busy(what: string): void;
  idle(): void;
  showError(message: string): void;
  clearError(): void;
}

export type Reply<T> = { status: "ok"; result: T } | { status: "error"; message: string } | { status: "superseded" };

interface Waiting {
  method: string;
  params: unknown;
  resolve: (reply: Reply<unknown>) => void;
}

interface Response {
  kind: "iw:response";
  id: string | null;
  ok: boolean;
  result?: unknown;
  error?: string;
}

function isResponse(message: unknown): message is Response {
  return message !== null && typeof message === "object" && (message as Response).kind === "iw:response";
}

export class Requester {
  private readonly waiting = new Map<string, Waiting>();
  private inFlight: { id: string; request: Waiting } | null = null;
  private counter = 0;
  private readonly prefix = Math.random().toString(36).slice(2, 10);

  constructor(private readonly model: AnyModel, private readonly status: StatusSink, signal: AbortSignal, root: EventTarget) {
    const listener = (message: unknown, buffers: unknown[]) => this.receive(message, buffers ?? []);
    model.on("msg:custom", listener);
    signal.addEventListener("abort", () => {
      model.off("msg:custom", listener);
      for (const request of this.waiting.values()) request.resolve({ status: "superseded" });
      this.waiting.clear();
    });
    root.addEventListener("iw-request", (event) => {
      const detail = (event as CustomEvent).detail ?? {};
      void this.request(detail.method, detail.params);
    }, { signal });
  }

  /** Sends `method(params)` to the kernel; with a `key`, a newer waiting request of that key replaces this one. */
  request<T>(method: string, params: unknown, key?: string): Promise<Reply<T>> {
    return new Promise((resolve) => {
      const slot = key ?? `#${this.counter++}`;
      this.waiting.get(slot)?.resolve({ status: "superseded" });
      this.waiting.delete(slot);
      this.waiting.set(slot, { method, params, resolve: resolve as (reply: Reply<unknown>) => void });
      this.pump();
    });
  }

  private pump(): void {
    if (this.inFlight) return;
    const next = this.waiting.entries().next();
    if (next.done) {
      this.status.idle();
      return;
    }
    const [slot, request] = next.value;
    this.waiting.delete(slot);
    const id = `${this.prefix}-${this.counter++}`;
    this.inFlight = { id, request };
    this.status.busy(request.method);
    this.model.send({ kind: "iw:request", id, method: request.method, params: request.params });
  }

  private receive(message: unknown, buffers: unknown[]): void {
    if (!isResponse(message)) return;
    if (message.id === null) {
      this.status.showError(message.error ?? "the kernel could not read a message from this widget");
      return;
    }
    if (!this.inFlight || message.id !== this.inFlight.id) return; // another view's reply
    const { request } = this.inFlight;
    this.inFlight = null;
    if (message.ok) {
      this.status.clearError();
      let result: unknown;
      try {
        result = attachBuffers(message.result, buffers);
      } catch (error) {
        this.status.showError(`unreadable reply: ${(error as Error).message}`);
        request.resolve({ status: "error", message: String(error) });
        this.pump();
        return;
      }
      request.resolve({ status: "ok", result });
    } else {
      const text = message.error ?? "the kernel answered with an error";
      this.status.showError(text);
      request.resolve({ status: "error", message: text });
    }
    this.pump();
  }
}
