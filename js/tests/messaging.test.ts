// Requester: one request in flight per view, coalescing by key, error replies, scripting hook.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AnyModel, Listener } from "../lib/anywidget";
import { Requester, type StatusSink } from "../lib/messaging";

class FakeModel implements AnyModel {
  sent: any[] = [];
  private listeners: Listener[] = [];
  get(): unknown { return undefined; }
  set(): void {}
  save_changes(): void {}
  send(content: unknown): void { this.sent.push(content); }
  on(_event: string, listener: Listener): void { this.listeners.push(listener); }
  off(_event?: string | null, listener?: Listener | null): void { this.listeners = this.listeners.filter((l) => l !== listener); }
  reply(content: unknown, buffers: unknown[] = []): void { this.listeners.forEach((listener) => listener(content, buffers)); }
  answer(index: number, result: unknown, buffers: unknown[] = []): void {
    this.reply({ kind: "iw:response", id: this.sent[index].id, ok: true, result }, buffers);
  }
}

class FakeStatus implements StatusSink {
  log: string[] = [];
  busy(what: string) { this.log.push(`busy ${what}`); }
  idle() { this.log.push("idle"); }
  showError(message: string) { this.log.push(`error ${message}`); }
  clearError() { this.log.push("clear"); }
}

function setup() {
  const model = new FakeModel();
  const status = new FakeStatus();
  const controller = new AbortController();
  const root = new EventTarget();
  const requester = new Requester(model, status, controller.signal, root);
  return { model, status, controller, root, requester };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

test("sends one request at a time and resolves it with the reply and its buffers", async () => {
  const { model, status, requester } = setup();
  const first = requester.request("a", { x: 1 });
  const second = requester.request("b", {});
  assert.equal(model.sent.length, 1);
  assert.deepEqual(model.sent[0], { kind: "iw:request", id: model.sent[0].id, method: "a", params: { x: 1 } });
  const buffer = new Uint8Array([7]);
  model.answer(0, { data: { $buffer: 0 } }, [buffer]);
  assert.deepEqual(await first, { status: "ok", result: { data: buffer } });
  assert.equal(model.sent.length, 2);
  model.answer(1, 5);
  assert.deepEqual(await second, { status: "ok", result: 5 });
  assert.equal(status.log.at(-1), "idle");
});

test("a waiting request is replaced by a newer one with the same key", async () => {
  const { model, requester } = setup();
  const inFlight = requester.request("pattern", { head: 0 }, "pattern");
  const replaced = requester.request("pattern", { head: 1 }, "pattern");
  const latest = requester.request("pattern", { head: 2 }, "pattern");
  assert.deepEqual(await replaced, { status: "superseded" });
  model.answer(0, "h0");
  assert.deepEqual(await inFlight, { status: "ok", result: "h0" });
  assert.equal(model.sent.length, 2);
  assert.deepEqual(model.sent[1].params, { head: 2 });
  model.answer(1, "h2");
  assert.deepEqual(await latest, { status: "ok", result: "h2" });
});

test("error replies are shown and resolve as errors; the next request still goes out", async () => {
  const { model, status, requester } = setup();
  const failing = requester.request("x", {});
  const next = requester.request("y", {});
  model.reply({ kind: "iw:response", id: model.sent[0].id, ok: false, error: "layer must be an integer" });
  assert.deepEqual(await failing, { status: "error", message: "layer must be an integer" });
  assert.ok(status.log.includes("error layer must be an integer"));
  assert.equal(model.sent.length, 2);
  model.answer(1, null);
  assert.equal((await next).status, "ok");
  assert.ok(status.log.includes("clear"));
});

test("replies to other views and unrelated messages are ignored; unattributed errors are shown", async () => {
  const { model, status, requester } = setup();
  const pending = requester.request("x", {});
  model.reply({ kind: "iw:response", id: "someone-else", ok: true, result: 1 });
  model.reply("not a response");
  model.reply({ kind: "iw:response", id: null, ok: false, error: "expected a request object" });
  assert.ok(status.log.includes("error expected a request object"));
  model.answer(0, 2);
  assert.deepEqual(await pending, { status: "ok", result: 2 });
});

test("the iw-request event sends its request; aborting stops listening", async () => {
  const { model, controller, root } = setup();
  root.dispatchEvent(new CustomEvent("iw-request", { detail: { method: "pattern", params: { layer: "zero" } } }));
  assert.equal(model.sent.length, 1);
  assert.deepEqual(model.sent[0].params, { layer: "zero" });
  controller.abort();
  model.answer(0, 1);
  root.dispatchEvent(new CustomEvent("iw-request", { detail: { method: "pattern", params: {} } }));
  await tick();
  assert.equal(model.sent.length, 1);
});

test("a request the kernel never answers times out, frees the queue and ignores the late reply", async () => {
  const model = new FakeModel();
  const status = new FakeStatus();
  const controller = new AbortController();
  const requester = new Requester(model, status, controller.signal, new EventTarget(), 0.01);
  const first = requester.request("slow", {});
  const second = requester.request("next", {});
  const reply = await first;
  assert.equal(reply.status, "error");
  assert.match((reply as { message: string }).message, /did not answer slow within 0.01 s/);
  assert.equal(model.sent.length, 2, "the queued request goes out once the first has timed out");
  model.answer(0, "late"); // the late reply to the expired request is not taken for the second one's
  model.answer(1, "fresh");
  assert.deepEqual(await second, { status: "ok", result: "fresh" });
  controller.abort();
});

test("fetch decodes the result, and answers null for errors and unreadable replies", async () => {
  const { model, status, requester } = setup();
  const decoded = requester.fetch("a", {}, { decode: (result: { n: number }) => result.n * 2 });
  model.answer(0, { n: 21 });
  assert.equal(await decoded, 42);
  const broken = requester.fetch("b", {}, { decode: () => { throw new TypeError("no list"); } });
  await tick();
  model.answer(1, {});
  assert.equal(await broken, null);
  assert.ok(status.log.includes("error unreadable reply to b: no list"));
  const failed = requester.fetch("c", {});
  await tick();
  model.reply({ kind: "iw:response", id: model.sent[2].id, ok: false, error: "bad c" });
  assert.equal(await failed, null);
});
