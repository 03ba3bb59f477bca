"""Benchmark: attribution graphs on the teaching model, relative to one forward + backward pass of the model.

Measures, for an IOI prompt and an induction prompt with the bundled transcoders, the wall time of
  - the reference: one forward pass of the real model and one backward pass of the top logit;
  - building the attribution graph over every active transcoder feature (`iw.circuits.attribution_graph`), and
    with a `max_feature_nodes` budget of 500 (influence-ranked rows);
  - pruning at circuit-tracer's defaults (node 0.8, edge 0.98), the replacement and completeness scores, and one
    faithfulness measurement by real ablation (what a slider step of the graph view asks the kernel for);
and reports the graph's size and scores. Prints a table and writes bench/results/attribution_graph.json. Times are
medians over `--repeats` runs.

    python bench/bench_attribution_graph.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import interpwidgets as iw
from interpwidgets.circuits.attribution_graph import attribution_graph

RESULTS = Path(__file__).resolve().parent / "results" / "attribution_graph.json"


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def forward_backward(model, tokens) -> None:
    logits = model(tokens)
    logits[0, -1].max().backward()
    model.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = iw.load_model()
    saes = iw.sae.pretrained(model)
    ioi = iw.tasks.ioi(model, n=1, seed=0).clean_tokens[:1]
    induction = iw.tasks.induction(model, n=1, seed=0).clean_tokens[:1]
    rows = []
    for name, tokens in (("ioi", ioi), ("induction", induction)):
        attribution_graph(model, saes, tokens, max_feature_nodes=10, progress=False)  # warm-up
        for _ in range(5):
            forward_backward(model, tokens)
        reference, _ = timed(lambda: forward_backward(model, tokens), 21)
        build, graph = timed(lambda: attribution_graph(model, saes, tokens, progress=False), args.repeats)
        budget, small = timed(lambda: attribution_graph(model, saes, tokens, max_feature_nodes=500, progress=False),
                              args.repeats)
        prune, pruning = timed(lambda: graph.prune(0.8, 0.98), args.repeats)
        score, scores = timed(graph.scores, args.repeats)
        faithful, faith = timed(lambda: graph.faithfulness(pruning), max(5, args.repeats))
        rows.append({
            "prompt": name, "tokens": int(tokens.shape[1]), "nodes": len(graph), "edges": int(len(graph.src)),
            "features": int(len(graph.of_type("feature"))), "pruned_nodes": pruning.n_nodes,
            "pruned_edges": pruning.n_edges, "replacement": scores.replacement, "completeness": scores.completeness,
            "faithfulness_zero": faith.faithfulness, "forward_backward_s": reference, "build_s": build,
            "build_ratio": build / reference, "build_500_s": budget, "build_500_ratio": budget / reference,
            "prune_s": prune, "scores_s": score, "faithfulness_s": faithful,
        })
    print(f"{'prompt':<10} {'tok':>4} {'nodes':>6} {'edges':>9} {'fwd+bwd':>8} {'build':>8} {'ratio':>6} "
          f"{'500 feat':>8} {'ratio':>6} {'prune':>7} {'scores':>7} {'faith.':>7} {'pruned':>11} {'repl.':>6} "
          f"{'compl.':>6} {'faith':>6}")
    for r in rows:
        print(f"{r['prompt']:<10} {r['tokens']:>4} {r['nodes']:>6} {r['edges']:>9} {r['forward_backward_s']*1e3:>6.1f}ms "
              f"{r['build_s']:>7.2f}s {r['build_ratio']:>5.0f}x {r['build_500_s']:>7.2f}s {r['build_500_ratio']:>5.0f}x "
              f"{r['prune_s']*1e3:>5.0f}ms {r['scores_s']*1e3:>5.0f}ms {r['faithfulness_s']*1e3:>5.0f}ms "
              f"{r['pruned_nodes']:>4}/{r['pruned_edges']:<6} {r['replacement']:>6.3f} {r['completeness']:>6.3f} "
              f"{r['faithfulness_zero']:>6.3f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "threads": args.threads,
                                   "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
