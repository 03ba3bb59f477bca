// Browser-side pruning (lib/prune.ts) on a hand-built attribution graph whose influence, edge scores and masks
// were worked out by hand (below), including the clean-up that drops a feature left without inputs, a bias and an
// error left without outputs; and the transport fact the view relies on: pruning only the nodes sent for a larger
// node threshold (with the whole graph's influence total) gives the same masks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BIAS, ERROR, FEATURE, LOGIT, TOKEN, type PruneGraph, accurateSum, findThreshold, prune } from "../lib/prune";

// Nodes: t0, t1 tokens; a, b features; e an error; c a bias; L the logit target (weight 1).
//   edges: a->L 6, b->L -3, e->L 1 | t0->a 2, t1->a 2 | t1->b 1, c->b 1
// Row-normalised |adjacency|: L <- a .6, b .3, e .1; a <- t0 .5, t1 .5; b <- t1 .5, c .5.
// Influence from L: a .6, b .3, e .1; t0 = .6*.5 = .3; t1 = .6*.5 + .3*.5 = .45; c = .3*.5 = .15; L 0 (total 1.9).
// Sorted: .6 a, .45 t1, .3 b, .3 t0, .15 c, .1 e, 0 L; cumulative shares .316 .553 .711 .868 .947 1 1.
const NAMES = ["t0", "t1", "a", "b", "e", "c", "L"];
const EDGES: [string, string, number][] = [
  ["a", "L", 6], ["b", "L", -3], ["e", "L", 1], ["t0", "a", 2], ["t1", "a", 2], ["t1", "b", 1], ["c", "b", 1],
];
const TYPES = [TOKEN, TOKEN, FEATURE, FEATURE, ERROR, BIAS, LOGIT];
const INFLUENCE = [0.3, 0.45, 0.6, 0.3, 0.1, 0.15, 0];

function graph(names: string[] = NAMES): PruneGraph {
  const at = (name: string) => names.indexOf(name);
  const edges = EDGES.filter(([s, d]) => at(s) >= 0 && at(d) >= 0);
  const index = names.map((name) => NAMES.indexOf(name));
  return {
    nodeType: index.map((i) => TYPES[i]),
    influence: Float64Array.from(index.map((i) => INFLUENCE[i])),
    influenceTotal: 1.9,
    logitWeights: Float64Array.from(index.map((i) => (NAMES[i] === "L" ? 1 : 0))),
    src: Int32Array.from(edges.map(([s]) => at(s))),
    dst: Int32Array.from(edges.map(([, d]) => at(d))),
    weight: Float32Array.from(edges.map(([, , w]) => w)),
  };
}

function kept(g: PruneGraph, names: string[], nodeThreshold: number, edgeThreshold: number): { nodes: string[]; edges: string[] } {
  const masks = prune(g, nodeThreshold, edgeThreshold);
  const nodes = names.filter((_, i) => masks.nodeMask[i]);
  const edges = Array.from(g.src, (s, e) => [s, e] as const).filter(([, e]) => masks.edgeMask[e])
    .map(([s, e]) => `${names[s]}>${names[g.dst[e]]}`);
  assert.equal(masks.nNodes, nodes.length);
  assert.equal(masks.nEdges, edges.length);
  return { nodes: nodes.sort(), edges: edges.sort() };
}

test("findThreshold: the score at which the largest scores first reach the fraction of the total", () => {
  assert.equal(findThreshold([1, 3, 2], 0.5), 3); // 3/6 = .5 reaches .5
  assert.equal(findThreshold([1, 3, 2], 0.6), 2); // 5/6
  assert.equal(findThreshold([1, 3, 2], 1), 1);
  assert.equal(findThreshold([1, 3, 2], 0.5, 12), 1); // of a total of 12 (nodes not given): 6/12 after all three
  assert.equal(findThreshold([], 0.5), Infinity);
  assert.equal(findThreshold([0, 0], 0.5), Infinity);
  assert.equal(accurateSum([1e16, 1, -1e16, 1]), 2); // a plain running sum gives 1
});

test("node threshold .5: a and t1 carry it (cut .45); edge threshold .9 keeps the three edges among them", () => {
  // kept: a, t1 (>= .45) and the tokens and logit. Pruned influence: a 1, t0 .5, t1 .5; edge scores a>L 1,
  // t0>a .5, t1>a .5 (total 2, shares .5 .75 1): at .9 the cut is .5.
  assert.deepEqual(kept(graph(), NAMES, 0.5, 0.9), { nodes: ["L", "a", "t0", "t1"], edges: ["a>L", "t0>a", "t1>a"] });
});

test("edge threshold .4 keeps only a>L, so the clean-up drops a (a feature with no input) and its edge", () => {
  assert.deepEqual(kept(graph(), NAMES, 0.5, 0.4), { nodes: ["L", "t0", "t1"], edges: [] });
});

test("node threshold .8 adds b (cut .3); the edges among the kept nodes tie at 1/3 below a>L at 2/3", () => {
  // L <- a 2/3, b 1/3 (c>b is not live: b's only input is t1, share 1); pruned influence a 2/3, b 1/3, t1 2/3, t0 1/3;
  // scores a>L 2/3, b>L 1/3, t0>a 1/3, t1>a 1/3, t1>b 1/3 (total 2; shares 1/3, 1/2, 2/3, 5/6, 1)
  const all = { nodes: ["L", "a", "b", "t0", "t1"], edges: ["a>L", "b>L", "t0>a", "t1>a", "t1>b"] };
  assert.deepEqual(kept(graph(), NAMES, 0.8, 0.98), all);
  assert.deepEqual(kept(graph(), NAMES, 0.8, 0.45), all);
  // at .3 only a>L (2/3) stays: a loses its inputs and b its output
  assert.deepEqual(kept(graph(), NAMES, 0.8, 0.3), { nodes: ["L", "t0", "t1"], edges: [] });
});

test("node threshold .99 keeps every node; the edge step then drops the error (no output) and the bias", () => {
  // scores a>L .6, b>L .3, e>L .1, t0>a .3, t1>a .3, t1>b .15, c>b .15 (total 1.9; shares .316 .474 .632 .789
  // .868 .947 1): .85 cuts at .15 (only e>L goes, and with it e); .7 cuts at .3, so b loses its inputs and c its output
  assert.deepEqual(kept(graph(), NAMES, 0.99, 0.85), {
    nodes: ["L", "a", "b", "c", "t0", "t1"], edges: ["a>L", "b>L", "c>b", "t0>a", "t1>a", "t1>b"] });
  assert.deepEqual(kept(graph(), NAMES, 0.99, 0.7), { nodes: ["L", "a", "t0", "t1"], edges: ["a>L", "t0>a", "t1>a"] });
});

test("pruning only the nodes sent for threshold .8 (with the whole graph's total) equals pruning the whole graph", () => {
  const sent = ["t0", "t1", "a", "b", "L"]; // kept at .8 before the clean-up, and every token and logit
  for (const [t, e] of [[0.5, 0.9], [0.5, 0.4], [0.8, 0.98], [0.8, 0.3], [0.3, 0.5], [0.75, 0.6]]) {
    assert.deepEqual(kept(graph(sent), sent, t, e), kept(graph(), NAMES, t, e), `thresholds ${t}, ${e}`);
  }
});

test("a graph with no weighted logit keeps only its tokens and logits; thresholds outside [0, 1] are refused", () => {
  const g = { ...graph(), influence: new Float64Array(7), influenceTotal: 0 };
  assert.deepEqual(kept(g, NAMES, 0.8, 0.98).nodes, ["L", "t0", "t1"]);
  assert.throws(() => prune(graph(), 1.2, 0.5), /node threshold must be between 0 and 1/);
  assert.throws(() => prune(graph(), 0.5, Number.NaN), /edge threshold must be between 0 and 1/);
});
