"""Benchmark: activation-patching sweeps against transformer_lens.patching on the same inputs, same run.

For each sweep both sides start from tokens: TransformerLens caches the clean run and calls its
`get_act_patch_*` function (one forward per cell); interpwidgets runs `activation_patch` (clean and
corrupt baselines, then all cells stacked along the batch in a few forwards). Values must agree to
1e-4. Times are the best of 3-10 alternating runs (the machine may be shared); the speed-up
is TransformerLens's wall time over ours (the CPU-time ratio, less sensitive to other load, is given too).

Models (`--models`): "teaching", the trained teaching model when its weights exist (else the same architecture
with random weights); "gpt2-small", a random GPT-2-small-shaped model (`GPT2Config()`: 12 layers, d_model 768,
12 heads, 50,257 tokens) saved by `transformers` to a temporary folder and loaded with `iw.load_model(folder)`.
On that model one TransformerLens forward of 16 prompts costs about a second on 2 CPU cores, so it gets the two
sweeps with the fewest cells and `--gpt2-repeats` runs. Prints a markdown table and writes bench/results/patching.json.

    python bench/bench_patching.py [--models teaching gpt2-small] [--n 4 16] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens's per-cell progress bars would swamp the table

import torch  # noqa: E402
import transformer_lens.patching as tlp  # noqa: E402

import interpwidgets as iw  # noqa: E402
from interpwidgets.models.families import GPT2_SMALL, save_random_family  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "patching.json"
# (name, TransformerLens function, our site and granularity, permutation of TL's axes into ours)
SWEEPS = [
    ("resid_pre by layer x position", tlp.get_act_patch_resid_pre, "resid_pre", "position", None),
    ("head outputs (z) by layer x head", tlp.get_act_patch_attn_head_out_all_pos, "z", "head", None),
    ("head outputs (z) by layer x head x position", tlp.get_act_patch_attn_head_out_by_pos, "z", "head_position", (0, 2, 1)),
]


def load(name: str, device: str, folder: Path) -> tuple[object, str]:
    """(model, description) for a --models entry."""
    if name == GPT2_SMALL:
        save_random_family(GPT2_SMALL, folder)
        return iw.load_model(str(folder), device=device), "GPT-2-small-shaped, random weights (GPT2Config())"
    try:
        return iw.load_model(device=device), "teaching (trained)"
    except FileNotFoundError:
        return iw.models.build_teaching_model(seed=0, device=device), "teaching architecture, random weights"


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
    return lambda: iw.patching.activation_patch(model, task, site=site, by=by, normalize=False, progress=False).values


def bench_sweep(model, task, name, fn, site, by, order, repeats: int, budget_s: float) -> dict:
    """Both sides the same number of times, alternating: `repeats`, or more (up to 10) while
    TransformerLens's runs fit in `budget_s` seconds, so short sweeps get more samples."""
    ours_run, tl_run = our_sweep(model, task, site, by), transformer_lens_sweep(model, task, fn, order)
    wall = {"tl": [], "ours": []}
    cpu = {"tl": [], "ours": []}
    values = {}
    runs = repeats
    if budget_s > 0:  # short sweeps: a warm-up, then as many runs as fit (a sweep of minutes needs neither)
        ours_run()
        first, _, _ = timed(tl_run)
        runs = max(repeats, min(10, int(budget_s / first)))
    for _ in range(runs):
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
    parser.add_argument("--models", nargs="+", default=["teaching", GPT2_SMALL], choices=["teaching", GPT2_SMALL])
    parser.add_argument("--n", type=int, nargs="+", default=[16], help="IOI prompts per task (several: one table row each)")
    parser.add_argument("--repeats", type=int, default=3, help="least timed runs of each side per sweep")
    parser.add_argument("--gpt2-repeats", type=int, default=1, help="timed runs of each side per sweep on gpt2-small")
    parser.add_argument("--budget-s", type=float, default=20.0, help="more runs (up to 10) while TransformerLens's fit in this")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    setup = {
        "device": args.device, "torch": torch.__version__, "transformer_lens": importlib.metadata.version("transformer-lens"),
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(), "repeats": args.repeats,
        "load_average_at_start": os.getloadavg(), "models": {},
    }
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            model, description = load(name, args.device, Path(folder) / name)
            big = name == GPT2_SMALL
            sweeps = SWEEPS[:2] if big else SWEEPS
            for n in args.n:
                task = iw.tasks.ioi(model, n=n, seed=0).to(args.device)
                setup["models"][name] = f"{description}; IOI prompts of {task.clean_tokens.shape[1]} tokens"
                for sweep, fn, site, by, order in sweeps:
                    repeats, budget = (args.gpt2_repeats, 0.0) if big else (args.repeats, args.budget_s)
                    rows.append({"model": name, **bench_sweep(model, task, sweep, fn, site, by, order, repeats, budget)})
                    print(f"done: {name}, {sweep}, {n} prompts", flush=True)
            del model

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup": setup, "results": rows}, indent=2) + "\n")
    for name, description in setup["models"].items():
        print(f"\n{name}: {description}")
    print(f"\n{args.device}, {setup['threads']} threads; best of the timed runs of each side\n")
    print("| model | sweep | prompts | cells | transformer_lens.patching (s) | interpwidgets (s) | speed-up | CPU-time speed-up | max abs diff |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['sweep']} | {r['prompts']} | {r['cells']} | {r['transformer_lens_s']:.2f} | {r['interpwidgets_s']:.2f} | "
              f"{r['speedup']:.1f}x | {r['cpu_time_speedup']:.1f}x | {r['max_abs_diff']:.1e} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
