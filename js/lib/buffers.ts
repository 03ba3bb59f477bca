// Decoding the binary arrays the kernel sends: the one wire layer (Python side: interpwidgets/widgets/encoding.py).
//
// A float array travels as {dtype, shape, scale?, offset?, compression?, data}: `data` is a binary buffer of
// little-endian float16 values or of uint8 codes; a stored value q means offset + scale * q; "deflate"
// means the bytes are zlib-compressed. An integer array travels as {dtype: "int32", shape, data} (little-endian).
// Reply payloads refer to message buffers as {"$buffer": index}.

export interface WireArray {
  dtype: "float16" | "uint8";
  shape: number[];
  scale?: number;
  offset?: number;
  compression?: "deflate" | null;
  data: unknown;
}

export interface NDArray {
  shape: number[];
  data: Float32Array;
}

/** The bytes of a buffer as received from a widget message (DataView, ArrayBuffer or typed array). */
export function bytesOf(buffer: unknown): Uint8Array {
  if (buffer instanceof Uint8Array) return buffer;
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  throw new TypeError("expected a binary buffer");
}

/** Replaces every {"$buffer": i} placeholder in a reply with buffers[i]. */
export function attachBuffers(value: unknown, buffers: readonly unknown[]): unknown {
  if (Array.isArray(value)) return value.map((item) => attachBuffers(item, buffers));
  if (value === null || typeof value !== "object") return value;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length === 1 && keys[0] === "$buffer" && typeof record.$buffer === "number") {
    const buffer = buffers[record.$buffer];
    if (buffer === undefined) throw new RangeError(`reply refers to missing buffer ${record.$buffer}`);
    return buffer;
  }
  return Object.fromEntries(keys.map((key) => [key, attachBuffers(record[key], buffers)]));
}

let halfTable: Float32Array | null = null;

/** float16 bit pattern -> float32, for all 65536 patterns. */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    if (exponent === 0) halfTable[bits] = sign * fraction * 2 ** -24;
    else if (exponent === 31) halfTable[bits] = fraction ? NaN : sign * Infinity;
    else halfTable[bits] = sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }
  return halfTable;
}

async function inflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function isWireArray(value: unknown): value is WireArray {
  if (value === null || typeof value !== "object") return false;
  const wire = value as Partial<WireArray>;
  return (wire.dtype === "float16" || wire.dtype === "uint8") && Array.isArray(wire.shape) && wire.shape.every((n) => Number.isInteger(n) && n >= 0);
}

/** Decodes a wire array into float32 values (row-major), checking its length against its shape. */
export async function decodeArray(value: unknown): Promise<NDArray> {
  if (!isWireArray(value)) throw new TypeError("malformed array in the kernel's reply");
  let bytes = bytesOf(value.data);
  if (value.compression === "deflate") bytes = await inflate(bytes);
  const size = value.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  const scale = value.scale ?? 1;
  const offset = value.offset ?? 0;
  if (value.dtype === "float16") {
    if (bytes.byteLength !== size * 2) throw new RangeError(`float16 array of shape [${value.shape}] has ${bytes.byteLength} bytes`);
    const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
    const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, size);
    const table = halfToFloatTable();
    for (let i = 0; i < size; i++) data[i] = offset + scale * table[halves[i]];
  } else {
    if (bytes.byteLength !== size) throw new RangeError(`uint8 array of shape [${value.shape}] has ${bytes.byteLength} bytes`);
    for (let i = 0; i < size; i++) data[i] = offset + scale * bytes[i];
  }
  return { shape: value.shape, data };
}

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
