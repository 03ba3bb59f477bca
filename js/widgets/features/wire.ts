// Decoding what the SAE feature widgets receive besides float arrays: int32 arrays and prediction lists.
// Python side: interpwidgets/widgets/feature_params.py.

import { bytesOf, decodeArray } from "../../lib/buffers";

export interface IntArray {
  shape: number[];
  data: Int32Array;
}

/** Decodes {dtype: "int32", shape, data} (little-endian), checking its length against its shape. */
export function decodeInt32(value: unknown): IntArray {
  const wire = value as { dtype?: unknown; shape?: unknown; data?: unknown } | null;
  if (!wire || wire.dtype !== "int32" || !Array.isArray(wire.shape) || !wire.shape.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new TypeError("malformed int32 array in the kernel's reply");
  }
  const shape = wire.shape as number[];
  const size = shape.reduce((a, b) => a * b, 1);
  const bytes = bytesOf(wire.data);
  if (bytes.byteLength !== size * 4) throw new RangeError(`int32 array of shape [${shape}] has ${bytes.byteLength} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Int32Array(size);
  for (let i = 0; i < size; i++) data[i] = view.getInt32(i * 4, true);
  return { shape, data };
}

/** Decodes a float16 / uint8 wire array into float32 values, checking its number of values. */
export async function decodeFloats(value: unknown, length?: number): Promise<Float32Array> {
  const array = await decodeArray(value);
  if (length !== undefined && array.data.length !== length) throw new RangeError(`expected ${length} values, got ${array.data.length}`);
  return array.data;
}

export interface Ranked {
  tokens: string[];
  values: Float32Array;
}

/** Decodes {tokens: [...], <key>: wire array} into tokens with one value each. */
export async function decodeRanked(value: unknown, key: "probs" | "values"): Promise<Ranked> {
  const record = value as Record<string, unknown> | null;
  const tokens = record?.tokens;
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === "string")) throw new TypeError("reply lacks a token list");
  return { tokens, values: await decodeFloats(record![key], tokens.length) };
}

/** The block index of a TransformerLens hook name ("blocks.2.hook_resid_post" -> 2), or null. */
export function hookLayer(hook: string): number | null {
  const match = /^blocks\.(\d+)\./.exec(hook);
  return match ? Number(match[1]) : null;
}
