"""Benchmark: activation-patching sweeps against transformer_lens.patching on the same inputs, same run.

For each sweep both sides start from tokens: TransformerLens caches the clean run and calls its
`get_act_patch_*` function (one forward per cell); interpwidgets runs `activation_patch` (clean and
corrupt baselines, then all cells stacked along the batch in a few forwards). Values must agree to
1e-4. Times are the best of 3-10 alternating runs (the machine may be shared); the speed-up
is TransformerLens's wall time over ours (the CPU-time ratio, less sensitive to other load, is given too). Uses the trained teaching model when its weights exist, else
the same architecture with random weights. Prints a markdown table and writes bench/results/patching.json.

    python bench/bench_patching.py [--n 4 16] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens's per-cell progress bars would swamp the table

import torch  # noqa: E402
import transformer_lens.patching as tlp  # noqa: E402

import interpwidgets as iw  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "patching.json"
# (name, TransformerLens function, our site and granularity, permutation of TL's axes into ours)
SWEEPS = [
    ("resid_pre by layer x position", tlp.get_act_patch_resid_pre, "resid_pre", "position", None),
    ("head outputs (z) by layer x head", tlp.get_act_patch_attn_head_out_all_pos, "z", "head", None),
    ("head outputs (z) by layer x head x position", tlp.get_act_patch_attn_head_out_by_pos, "z", "head_position", (0, 2, 1)),
]


def load(device: str):
    try:
        return iw.load_model(device=device), True
    except FileNotFoundError:
        return iw.models.build_teaching_model(seed=0, device=device), False


def timed(fn):
    """(wall seconds, CPU seconds of this process, fn's result)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def transformer_lens_sweep(model, task, fn, order):
    def run():
        with torch.no_grad():
            _, cache = model.run_with_cache(task.clean_tokens)
            values = fn(model, task.corrupt_tokens, cache, task.metric)
        return values.permute(order) if order else values

    return run


def our_sweep(model, task, site, by):
    return lambda: iw.patching.activation_patch(model, task, site, by=by, normalize=False, progress=False).values


def bench_sweep(model, task, name, fn, site, by, order, repeats: int, budget_s: float) -> dict:
    """Both sides the same number of times, alternating: `repeats`, or more (up to 10) while
    TransformerLens's runs fit in `budget_s` seconds, so short sweeps get more samples."""
    ours_run, tl_run = our_sweep(model, task, site, by), transformer_lens_sweep(model, task, fn, order)
    ours_run()  # warm-up (allocator, first-call overheads)
    wall = {"tl": [], "ours": []}
    cpu = {"tl": [], "ours": []}
    values = {}
    first, _, _ = timed(tl_run)
    for _ in range(max(repeats, min(10, int(budget_s / first)))):
        for side, run in (("tl", tl_run), ("ours", ours_run)):
            seconds, cpu_seconds, values[side] = timed(run)
            wall[side].append(seconds)
            cpu[side].append(cpu_seconds)
    diff = float((values["ours"].cpu() - values["tl"].cpu()).abs().max())
    return {
        "sweep": name, "site": site, "by": by, "prompts": len(task), "cells": values["ours"].numel(),
        "transformer_lens_s": min(wall["tl"]), "interpwidgets_s": min(wall["ours"]),
        "speedup": min(wall["tl"]) / min(wall["ours"]), "cpu_time_speedup": min(cpu["tl"]) / min(cpu["ours"]),
        "max_abs_diff": diff, "identical_to_1e-4": diff <= 1e-4, "runs_each": len(wall["tl"]),
        "transformer_lens_all_s": wall["tl"], "interpwidgets_all_s": wall["ours"],
        "transformer_lens_cpu_s": cpu["tl"], "interpwidgets_cpu_s": cpu["ours"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[16], help="IOI prompts per task (several: one table row each)")
    parser.add_argument("--repeats", type=int, default=3, help="least timed runs of each side per sweep")
    parser.add_argument("--budget-s", type=float, default=20.0, help="more runs (up to 10) while TransformerLens's fit in this")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    model, trained = load(args.device)
    tasks = {n: iw.tasks.ioi(model, n=n, seed=0).to(args.device) for n in args.n}
    seq = next(iter(tasks.values())).clean_tokens.shape[1]
    setup = {
        "model": "teaching (trained)" if trained else "teaching architecture, random weights (trained weights absent)",
        "task": f"IOI, {', '.join(map(str, args.n))} prompts x {seq} tokens", "device": args.device,
        "torch": torch.__version__, "transformer_lens": importlib.metadata.version("transformer-lens"),
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(), "repeats": args.repeats,
        "load_average_at_start": os.getloadavg(),
    }
    rows = []
    for n, task in tasks.items():
        for name, fn, site, by, order in SWEEPS:
            rows.append(bench_sweep(model, task, name, fn, site, by, order, args.repeats, args.budget_s))
            print(f"done: {name}, {n} prompts", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup": setup, "results": rows}, indent=2) + "\n")
    print(f"\n{setup['model']}; {setup['task']}; {args.device}, {setup['threads']} threads; best of 3-10 runs each\n")
    print("| sweep | prompts | cells | transformer_lens.patching (s) | interpwidgets (s) | speed-up | CPU-time speed-up | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['sweep']} | {r['prompts']} | {r['cells']} | {r['transformer_lens_s']:.2f} | {r['interpwidgets_s']:.2f} | "
              f"{r['speedup']:.1f}x | {r['cpu_time_speedup']:.1f}x | {r['max_abs_diff']:.1e} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
