"""Benchmark: circuit discovery cost relative to one forward + backward pass with the SAEs spliced.

Measures, on the teaching model with its bundled SAEs (or random SAEs of the same size when they
are not there yet), the wall time of
  - the reference: one forward and one backward pass of the task metric with every residual,
    attention-output and MLP-output SAE spliced in with its error term (`iw.sae.spliced`);
  - node attribution over every feature of every layer by attribution patching (`node_effects`,
    method "atp") and by integrated gradients (10 steps);
  - edge effects for a circuit of the top nodes; a linear computation graph and one attribution.
Prints a table and writes bench/results/circuits.json. Times are medians over `--repeats` runs.

    python bench/bench_circuits.py [--n 32] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

import interpwidgets as iw
from interpwidgets.circuits.edges import edge_effects
from interpwidgets.circuits.effects import node_effects
from interpwidgets.circuits.feature_circuit import select_nodes
from interpwidgets.circuits.linear_graph import LogitTarget, linear_graph
from interpwidgets.sae import SAEConfig, build_sae
from interpwidgets.sae.sets import SAESet

RESULTS = Path(__file__).resolve().parent / "results" / "circuits.json"


def load(device: str):
    try:
        model = iw.load_model(device=device)
        trained = True
    except FileNotFoundError:
        model = iw.models.build_teaching_model(seed=0, device=device)
        trained = False
    try:
        saes = iw.sae.pretrained(model, device=device)
        bundled = True
    except (FileNotFoundError, ValueError):
        saes, bundled = SAESet(), False
    d = model.cfg.d_model
    for layer in range(model.cfg.n_layers):
        hooks = [f"blocks.{layer}.hook_resid_post", f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_mlp_out"]
        for i, hook in enumerate(hooks):
            if hook not in saes:
                saes[hook] = build_sae(SAEConfig(d_in=d, d_sae=1024, architecture="relu", hook_name=hook), seed=i).to(device)
        tc_hook = f"blocks.{layer}.ln2.hook_normalized"
        if tc_hook not in saes:
            saes[tc_hook] = build_sae(SAEConfig(d_in=d, d_sae=1024, architecture="relu", hook_name=tc_hook,
                                                hook_name_out=f"blocks.{layer}.hook_mlp_out"), seed=9).to(device)
    return model, saes, trained, bundled


def timed(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32, help="IOI prompts per batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--edge-nodes", type=int, default=64, help="circuit size for the edge timing")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    model, saes, trained, bundled = load(args.device)
    task = iw.tasks.ioi(model, n=args.n, seed=0).to(args.device)
    sites = SAESet({k: v for k, v in saes.items() if not v.is_transcoder})
    n_features = sum(s.cfg.d_sae for s in sites.values())

    def reference():
        with iw.sae.spliced(model, sites, error_term=True):
            with torch.enable_grad():
                logits = model(task.clean_tokens)
                task.metric(logits).backward()
        model.zero_grad(set_to_none=True)

    def atp():
        return node_effects(model, saes, task.clean_tokens, task.corrupt_tokens, task.metric, method="atp", progress=False)

    def ig():
        return node_effects(model, saes, task.clean_tokens, task.corrupt_tokens, task.metric, method="ig", steps=10,
                            progress=False)

    reference()  # warm up
    rows = {}
    rows["forward+backward, SAEs spliced (reference)"] = timed(reference, args.repeats, args.device)
    rows["node attribution, atp (all features, all layers)"] = timed(atp, args.repeats, args.device)
    rows["node attribution, ig 10 steps"] = timed(ig, max(1, args.repeats - 2), args.device)

    effects = atp()
    flat = torch.cat([e.abs().flatten() for e in effects.effects.values()])
    threshold = float(flat.sort(descending=True).values[min(args.edge_nodes, flat.numel()) - 1])
    refs = select_nodes(effects, "none", threshold)[: args.edge_nodes]
    rows[f"edge effects, {len(refs)}-node circuit"] = timed(
        lambda: edge_effects(model, effects, refs, task.clean_tokens, task.metric, progress=False), 1, args.device)

    prompt = task.clean_tokens[0]
    target = LogitTarget(int(task.answer_tokens[0]), int(task.wrong_tokens[0]))
    rows["linear graph: build (one prompt)"] = timed(lambda: linear_graph(model, saes, prompt), args.repeats, args.device)
    graph = linear_graph(model, saes, prompt)
    rows["linear graph: one exact attribution"] = timed(lambda: graph.attribute(target), args.repeats, args.device)

    ref = rows["forward+backward, SAEs spliced (reference)"]
    result = {
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "trained_model": trained, "bundled_saes": bundled,
        "prompts": args.n, "seq_len": int(task.clean_tokens.shape[1]),
        "sites": len(sites) + 1, "features": n_features,
        "seconds": rows,
        "ratio_to_reference": {k: v / ref for k, v in rows.items()},
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{result['device']}, {args.n} IOI prompts x {result['seq_len']} tokens, {n_features} features at "
          f"{result['sites']} sites (trained model: {trained}, bundled SAEs: {bundled})")
    print(f"{'measurement':<52} {'seconds':>9} {'x reference':>12}")
    for name, seconds in rows.items():
        print(f"{name:<52} {seconds:>9.3f} {seconds / ref:>12.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
