// Requests to the kernel with ids, one at a time per view, and coalescing while busy.
//
// Protocol (Python side: interpwidgets/widgets/base.py):
//   front end -> kernel  {kind: "iw:request", id, method, params}
//   kernel -> front end  {kind: "iw:response", id, ok: true, result} + buffers
//                        {kind: "iw:response", id, ok: false, error}     (id is null when the request was unreadable)
// While a request is in flight, new requests wait; a new request with the same `key` as a waiting one replaces
// it (the replaced promise resolves "superseded"), so bursts of clicks cost one kernel call each. A request the
// kernel has not answered within its timeout (default 120 s) resolves as an error and frees the queue; a late
// reply to it is ignored.
//
// `fetch(method, params, {key, decode})` is what a widget calls: it resolves the decoded result, or null when the
// request was superseded or failed (the error is already shown in the status line).
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

export interface FetchOptions<T> {
  /** Coalescing key: a newer waiting request with the same key replaces this one. */
  key?: string;
  /** Turns the raw result into what the widget draws; a throw is shown as an unreadable reply. */
  decode?: (result: any) => T | Promise<T>;
  /** Seconds to wait for the kernel before giving up (default: the Requester's). */
  timeout?: number;
}

export const DEFAULT_TIMEOUT_S = 120;

interface Waiting {
  method: string;
  params: unknown;
  timeout: number;
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
  private inFlight: { id: string; request: Waiting; timer: ReturnType<typeof setTimeout> } | null = null;
  private counter = 0;
  private readonly prefix = Math.random().toString(36).slice(2, 10);

  constructor(
    private readonly model: AnyModel<any>,
    private readonly status: StatusSink,
    signal: AbortSignal,
    root: EventTarget,
    private readonly timeout: number = DEFAULT_TIMEOUT_S,
  ) {
    const listener = (message: unknown, buffers: unknown[]) => this.receive(message, buffers ?? []);
    model.on("msg:custom", listener);
    signal.addEventListener("abort", () => {
      model.off("msg:custom", listener);
      for (const request of this.waiting.values()) request.resolve({ status: "superseded" });
      this.waiting.clear();
      if (this.inFlight) {
        clearTimeout(this.inFlight.timer);
        this.inFlight.request.resolve({ status: "superseded" });
        this.inFlight = null;
      }
    });
    root.addEventListener("iw-request", (event) => {
      const detail = (event as CustomEvent).detail ?? {};
      void this.request(detail.method, detail.params);
    }, { signal });
  }

  /** Sends `method(params)` to the kernel; with a `key`, a newer waiting request of that key replaces this one. */
  request<T>(method: string, params: unknown, key?: string, timeout?: number): Promise<Reply<T>> {
    return new Promise((resolve) => {
      const slot = key ?? `#${this.counter++}`;
      this.waiting.get(slot)?.resolve({ status: "superseded" });
      this.waiting.delete(slot);
      this.waiting.set(slot, { method, params, timeout: timeout ?? this.timeout, resolve: resolve as (reply: Reply<unknown>) => void });
      this.pump();
    });
  }

  /** The decoded result of `method(params)`, or null if it was superseded or failed (the status line shows why). */
  async fetch<T = unknown>(method: string, params: unknown, options: FetchOptions<T> = {}): Promise<T | null> {
    const reply = await this.request<unknown>(method, params, options.key, options.timeout);
    if (reply.status !== "ok") return null;
    if (!options.decode) return reply.result as T;
    try {
      return await options.decode(reply.result);
    } catch (error) {
      this.status.showError(`unreadable reply to ${method}: ${(error as Error).message}`);
      return null;
    }
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
    const timer = setTimeout(() => this.expire(id), request.timeout * 1000);
    this.inFlight = { id, request, timer };
    this.status.busy(request.method);
    this.model.send({ kind: "iw:request", id, method: request.method, params: request.params });
  }

  private expire(id: string): void {
    if (!this.inFlight || this.inFlight.id !== id) return;
    const { request } = this.inFlight;
    this.inFlight = null;
    const text = `the kernel did not answer ${request.method} within ${request.timeout} s (is it busy or stopped?)`;
    this.status.showError(text);
    request.resolve({ status: "error", message: text });
    this.pump();
  }

  private receive(message: unknown, buffers: unknown[]): void {
    if (!isResponse(message)) return;
    if (message.id === null) {
      this.status.showError(message.error ?? "the kernel could not read a message from this widget");
      return;
    }
    if (!this.inFlight || message.id !== this.inFlight.id) return; // another view's reply
    const { request, timer } = this.inFlight;
    clearTimeout(timer);
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
