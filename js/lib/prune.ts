// Pruning of an attribution graph in the browser: the port of interpwidgets/circuits/influence.py `prune`
// (circuit-tracer's prune_graph on a COO edge list), so that a slider step re-prunes without the kernel.
//
// The graph here is what AttributionGraphView sends: the nodes `prune` can keep at the view's largest node threshold
// (with every token and logit), the edges among them in the graph's edge order, each node's influence on the WHOLE
// graph and the sum of all influence (`influenceTotal`). That suffices to compute exactly the masks of
// `graph.prune(t, e)` for any t up to that largest threshold: influence does not depend on the thresholds, the nodes
// kept at t are among those sent, and the edge step only looks at edges among kept nodes.
//
// Every sum runs in the order the Python runs it (index_add_ and cumsum are sequential on the CPU, and adding the
// zeros of the edges that are not sent changes no float), except the total of the edge scores, which torch sums
// pairwise: here it is a compensated (Neumaier) sum, within an ulp of the exact one. A mask could differ only where a
// cumulative share of the edge scores lies within ~1e-16 of the edge threshold.

export const NODE_TYPES = ["feature", "error", "token", "bias", "logit"] as const;
export const FEATURE = 0;
export const ERROR = 1;
export const TOKEN = 2;
export const BIAS = 3;
export const LOGIT = 4;
const MAX_ITER = 10_000;

export interface PruneGraph {
  /** [n] codes of NODE_TYPES */
  nodeType: ArrayLike<number>;
  /** [n] each node's influence on the weighted logits, computed on the whole graph */
  influence: Float64Array;
  /** sum of the influence of every node of the whole graph (also those not sent) */
  influenceTotal: number;
  /** [n] weight of each logit target (zero elsewhere) */
  logitWeights: Float64Array;
  /** [E] edges src -> dst (node indices), in the graph's order, with their direct effects */
  src: Int32Array;
  dst: Int32Array;
  weight: Float32Array;
}

export interface Masks {
  /** [n] 1 where the node is kept */
  nodeMask: Uint8Array;
  /** [E] 1 where the edge is kept */
  edgeMask: Uint8Array;
  nNodes: number;
  nEdges: number;
}

/** Sum of `values` with Neumaier's compensation (correctly rounded but for pathological inputs). */
export function accurateSum(values: ArrayLike<number>): number {
  let sum = 0;
  let compensation = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const t = sum + v;
    compensation += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
    sum = t;
  }
  return sum + compensation;
}

/** The score above which the largest scores, taken in order, first reach `fraction` of `total` (default: their
 * sum); Infinity when the total is not positive. As influence.py's `find_threshold`: the first index whose
 * cumulative share is >= fraction, or the last one. */
export function findThreshold(scores: ArrayLike<number>, fraction: number, total?: number): number {
  const ordered = Float64Array.from(scores).sort().reverse();
  const sum = total ?? accurateSum(ordered);
  if (!(sum > 0)) return Infinity;
  let cumulative = 0;
  for (let i = 0; i < ordered.length; i++) {
    cumulative += ordered[i];
    if (cumulative / sum >= fraction) return ordered[i];
  }
  return ordered[ordered.length - 1];
}

/** `|w| / (sum of |w| into the same dst)` per edge (0 for a node whose inputs are all zero). */
export function normalisedWeights(dst: Int32Array, weight: ArrayLike<number>, n: number): Float64Array {
  const into = new Float64Array(n);
  for (let e = 0; e < dst.length; e++) into[dst[e]] += Math.abs(weight[e]);
  const out = new Float64Array(dst.length);
  for (let e = 0; e < dst.length; e++) out[e] = Math.abs(weight[e]) / Math.max(into[dst[e]], 1e-10);
  return out;
}

/** `start @ (N + N^2 + ...)` for the row-normalised adjacency given per edge. */
export function propagate(src: Int32Array, dst: Int32Array, normalised: Float64Array, start: Float64Array): Float64Array {
  const n = start.length;
  const total = new Float64Array(n);
  let current = Float64Array.from(start);
  for (let iter = 0; iter < MAX_ITER; iter++) {
    const next = new Float64Array(n);
    for (let e = 0; e < src.length; e++) next[src[e]] += current[dst[e]] * normalised[e];
    let any = false;
    for (let i = 0; i < n; i++) if (next[i] !== 0) { any = true; break; }
    if (!any) return total;
    for (let i = 0; i < n; i++) total[i] += next[i];
    current = next;
  }
  throw new Error(`influence did not vanish after ${MAX_ITER} steps: the graph has a cycle`);
}

/** Node and edge masks of the graph pruned at `nodeThreshold` and `edgeThreshold` (fractions in [0, 1]). */
export function prune(g: PruneGraph, nodeThreshold: number, edgeThreshold: number): Masks {
  for (const [name, value] of [["node threshold", nodeThreshold], ["edge threshold", edgeThreshold]] as const) {
    if (!(value >= 0 && value <= 1)) throw new RangeError(`${name} must be between 0 and 1, got ${value}`);
  }
  const n = g.nodeType.length;
  const nEdgesAll = g.src.length;
  const nodeCut = findThreshold(g.influence, nodeThreshold, g.influenceTotal);
  const nodeMask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const t = g.nodeType[i];
    nodeMask[i] = g.influence[i] >= nodeCut || t === TOKEN || t === LOGIT ? 1 : 0;
  }
  const live = new Uint8Array(nEdgesAll);
  const pruned = new Float64Array(nEdgesAll);
  let nLive = 0;
  for (let e = 0; e < nEdgesAll; e++) {
    if (nodeMask[g.src[e]] && nodeMask[g.dst[e]]) {
      live[e] = 1;
      pruned[e] = g.weight[e];
      nLive++;
    }
  }
  const normalised = normalisedWeights(g.dst, pruned, n);
  const prunedInfluence = propagate(g.src, g.dst, normalised, g.logitWeights);
  for (let i = 0; i < n; i++) prunedInfluence[i] += g.logitWeights[i];
  const scores = new Float64Array(nEdgesAll);
  const liveScores = new Float64Array(nLive);
  for (let e = 0, k = 0; e < nEdgesAll; e++) {
    scores[e] = normalised[e] * prunedInfluence[g.dst[e]];
    if (live[e]) liveScores[k++] = scores[e];
  }
  const edgeCut = findThreshold(liveScores, edgeThreshold);
  const edgeMask = new Uint8Array(nEdgesAll);
  for (let e = 0; e < nEdgesAll; e++) edgeMask[e] = live[e] && scores[e] >= edgeCut && pruned[e] !== 0 ? 1 : 0;
  const hasOutput = new Uint8Array(n);
  const hasInput = new Uint8Array(n);
  for (;;) {
    hasOutput.fill(0);
    hasInput.fill(0);
    for (let e = 0; e < nEdgesAll; e++) {
      if (!edgeMask[e]) continue;
      if (!nodeMask[g.src[e]] || !nodeMask[g.dst[e]]) {
        edgeMask[e] = 0;
        continue;
      }
      hasOutput[g.src[e]] = 1;
      hasInput[g.dst[e]] = 1;
    }
    let changed = false;
    for (let i = 0; i < n; i++) {
      if (!nodeMask[i]) continue;
      const t = g.nodeType[i];
      const needsOutput = t === FEATURE || t === ERROR || t === BIAS;
      if ((needsOutput && !hasOutput[i]) || (t === FEATURE && !hasInput[i])) {
        nodeMask[i] = 0;
        changed = true;
      }
    }
    if (!changed) break;
  }
  let nNodes = 0;
  let nEdges = 0;
  for (let i = 0; i < n; i++) nNodes += nodeMask[i];
  for (let e = 0; e < nEdgesAll; e++) nEdges += edgeMask[e];
  return { nodeMask, edgeMask, nNodes, nEdges };
}
