// What the SAE feature widgets receive: the dictionaries' traits, float arrays of a known length and ranked token
// lists. Python side: interpwidgets/widgets/dictionary_choice.py and feature_params.py.

import { decodeArray } from "../../lib/buffers";

/** The read-only traits of `DictionaryList`: per dictionary, its input hook, its place as printed
 * ("resid_post1"), its number of features and its block (null outside the blocks). */
export interface DictionaryTraits {
  hooks: string[];
  labels: string[];
  sizes: number[];
  layers: (number | null)[];
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
