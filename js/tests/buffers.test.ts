// decodeArray / decodeInt32 against arrays encoded by the Python side (interpwidgets/widgets/encoding.py).
// IW_WIRE_FIXTURE names a JSON file: [{name, wire: {..., data: base64}, expected: number[] (null for NaN), tolerance}].
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { attachBuffers, decodeArray, decodeInt32 } from "../lib/buffers";

declare const process: { env: Record<string, string | undefined> };

interface Fixture {
  name: string;
  wire: Record<string, unknown> & { data: string };
  expected: (number | null)[];
  tolerance: number;
}

const path = process.env.IW_WIRE_FIXTURE;

test("decodes every array the kernel encoded", { skip: path ? false : "IW_WIRE_FIXTURE not set" }, async () => {
  const fixtures: Fixture[] = JSON.parse(readFileSync(path!, "utf8"));
  assert.ok(fixtures.length > 0);
  for (const fixture of fixtures) {
    const bytes = Uint8Array.from(Buffer.from(fixture.wire.data, "base64"));
    // the kernel's buffers arrive as DataViews, possibly at odd offsets
    const padded = new Uint8Array(bytes.length + 1);
    padded.set(bytes, 1);
    const wire = { ...fixture.wire, data: new DataView(padded.buffer, 1, bytes.length) };
    const decoded = fixture.wire.dtype === "int32" ? decodeInt32(wire) : await decodeArray(wire);
    assert.equal(decoded.data.length, fixture.expected.length, fixture.name);
    fixture.expected.forEach((value, i) => {
      if (value === null) assert.ok(Number.isNaN(decoded.data[i]), `${fixture.name}[${i}] should be NaN`);
      else assert.ok(Math.abs(decoded.data[i] - value) <= fixture.tolerance, `${fixture.name}[${i}]: ${decoded.data[i]} vs ${value}`);
    });
  }
});

test("rejects arrays whose bytes do not match their shape", async () => {
  await assert.rejects(decodeArray({ dtype: "float16", shape: [3], data: new Uint8Array(4) }), RangeError);
  await assert.rejects(decodeArray({ dtype: "uint8", shape: [2, 2], data: new Uint8Array(3) }), RangeError);
  await assert.rejects(decodeArray({ dtype: "float64", shape: [1], data: new Uint8Array(8) }), TypeError);
  assert.throws(() => decodeInt32({ dtype: "int32", shape: [2], data: new Uint8Array(7) }), RangeError);
  assert.throws(() => decodeInt32({ dtype: "uint8", shape: [1], data: new Uint8Array(4) }), TypeError);
});

test("attachBuffers replaces placeholders and rejects missing buffers", () => {
  const buffer = new Uint8Array([1]);
  assert.deepEqual(attachBuffers({ a: [{ $buffer: 0 }], b: "x" }, [buffer]), { a: [buffer], b: "x" });
  assert.throws(() => attachBuffers({ $buffer: 3 }, []), RangeError);
});

declare const Buffer: { from(data: string, encoding: string): Uint8Array };
