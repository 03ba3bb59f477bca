// What AttributionGraphView sends (Python side: interpwidgets/widgets/attribution_graph.py `graph_payload`): the
// nodes the view can show with int32 / float32 / float64 arrays (deflated) and string lists, the edges among them
// (indices into those nodes, in the graph's edge order) and the whole graph's influence total.

import { bytesOf, decodeInt32 } from "../../lib/buffers";
import type { PruneGraph } from "../../lib/prune";

export interface Totals {
  influence: number;
  nodes: number;
  edges: number;
  max_node_threshold: number;
}

export interface GraphData extends PruneGraph {
  n: number;
  /** [n] the node's index in the whole graph (what requests name) */
  index: Int32Array;
  ids: string[];
  labels: string[];
  clerps: string[];
  evidence: string[];
  kind: string[];
  nodeType: Int32Array;
  layer: Int32Array;
  position: Int32Array;
  feature: Int32Array;
  activation: Float32Array;
  totals: Totals;
}

type Wire = { dtype?: unknown; shape?: unknown; compression?: unknown; data?: unknown };

/** The wire array with its bytes inflated when they are deflated. */
async function inflated(raw: unknown): Promise<Wire> {
  const wire = raw as Wire | null;
  if (!wire || typeof wire !== "object") throw new TypeError("malformed array in the graph");
  if (wire.compression !== "deflate") return wire;
  const stream = new Blob([bytesOf(wire.data) as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("deflate"));
  return { ...wire, compression: null, data: new Uint8Array(await new Response(stream).arrayBuffer()) };
}

/** {dtype: "float32" | "float64", shape, data} (little-endian) -> values, checking the dtype and the length. */
export function decodeFloat(raw: unknown, dtype: "float32", length: number): Float32Array;
export function decodeFloat(raw: unknown, dtype: "float64", length: number): Float64Array;
export function decodeFloat(raw: unknown, dtype: "float32" | "float64", length: number): Float32Array | Float64Array {
  const wire = raw as Wire | null;
  if (!wire || wire.dtype !== dtype) throw new TypeError(`expected a ${dtype} array, got ${String(wire?.dtype)}`);
  const bytes = bytesOf(wire.data);
  const size = dtype === "float32" ? 4 : 8;
  if (bytes.byteLength !== length * size) throw new RangeError(`a ${dtype} array of ${length} values has ${bytes.byteLength} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === "float32") {
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}

/** The graph from the `nodes` and `edges` traits (their arrays inflated). */
export async function decodeGraph(rawNodes: Record<string, unknown>, rawEdges: Record<string, unknown>, totals: Totals): Promise<GraphData> {
  const inflate = async (record: Record<string, unknown>) => Object.fromEntries(await Promise.all(Object.entries(record).map(
    async ([key, value]) => [key, Array.isArray(value) ? value : await inflated(value)] as const)));
  const [nodes, edges] = await Promise.all([inflate(rawNodes), inflate(rawEdges)]);
  const strings = (key: string, n: number): string[] => {
    const value = nodes[key];
    if (!Array.isArray(value) || value.length !== n || !value.every((v) => typeof v === "string")) {
      throw new TypeError(`nodes.${key} is not a list of ${n} strings`);
    }
    return value as string[];
  };
  const index = decodeInt32(nodes.index).data;
  const n = index.length;
  const ints = (source: Record<string, unknown>, key: string, length: number): Int32Array => {
    const array = decodeInt32(source[key]).data;
    if (array.length !== length) throw new RangeError(`${key} has ${array.length} entries, not ${length}`);
    return array;
  };
  const src = decodeInt32(edges.src).data;
  const nEdges = src.length;
  const dst = ints(edges, "dst", nEdges);
  for (let e = 0; e < nEdges; e++) {
    if (src[e] < 0 || src[e] >= n || dst[e] < 0 || dst[e] >= n) throw new RangeError(`edge ${e} names a node outside the graph`);
  }
  return {
    n, index, ids: strings("ids", n), labels: strings("labels", n), clerps: strings("clerps", n),
    evidence: strings("evidence", n), kind: strings("kind", n),
    nodeType: ints(nodes, "type", n), layer: ints(nodes, "layer", n), position: ints(nodes, "position", n),
    feature: ints(nodes, "feature", n), activation: decodeFloat(nodes.activation, "float32", n),
    influence: decodeFloat(nodes.influence, "float64", n), logitWeights: decodeFloat(nodes.logit_weight, "float64", n),
    influenceTotal: totals.influence, totals,
    src, dst, weight: decodeFloat(edges.weight, "float32", nEdges),
  };
}
