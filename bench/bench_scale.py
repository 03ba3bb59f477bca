"""Benchmark: feature circuits and feature-dashboard statistics at GPT-2-small scale, time and peak memory.

The model is a random GPT-2-small-shaped model (`GPT2Config()`: 12 layers, d_model 768, 12 heads, 50,257 tokens)
saved by `transformers` to a temporary folder with the teaching tokenizer beside it and loaded with
`iw.load_model(folder)`. The dictionaries are random TopK SAEs (Gao et al. 2024; k=64 by default, as in OpenAI's
GPT-2-small SAEs) or JumpReLU SAEs (`--arch`) of `--d-sae` latents (24,576 by default) at
`blocks.L.hook_resid_post` (`--sites resid_post`; `attn` and `mlp` add `hook_attn_out` / `hook_mlp_out`) of the layers
in `--layers` (all by default). Random weights make timings and memory meaningful, not the circuits.

Steps (`--steps`):
  circuits   `iw.circuits.feature_circuit` on `--n` IOI prompts: node effects by attribution patching ("atp"),
             by integrated gradients (`--ig-steps`) with the default batch budget (1 GiB a pass on CPU) and with
             `--ig-budget-mb`, the setting that lowers that step's peak; the edge step for the `--edge-nodes`
             largest atp nodes. A feature circuit needs an SAE at every layer, so with a subset of `--layers`
             these steps are skipped.
  dashboard  `iw.sae.feature_stats(model, sae, rows)` (a `FeatureStats`: top examples, histograms and density of
             every latent) for the SAE of the middle layer of `--layers`, over `--tokens` tokens of the teaching
             corpus (64-token rows; ids from the 710-word teaching vocabulary); then a `FeatureDashboard` on that
             result answers the "feature" request of its strongest latent (what one click costs). The second run
             passes `batch_size=--dashboard-rows` (rows a forward pass; the default is 32).

Memory: each step runs in its own child process, which loads the model and the SAEs it needs ("RSS before" is
the resident set then), resets the kernel's resident-set high-water mark (writing 5 to /proc/self/clear_refs),
runs the step and reads VmHWM from /proc/self/status: "peak RSS" is the largest resident set of the process
during the step, model and SAEs included. (Where clear_refs cannot be written it is ru_maxrss, which includes
the set-up.) On a GPU the peak of allocated CUDA memory during the step is given too. Times are one run each
(wall clock, time.perf_counter), after the set-up. Prints a markdown table and writes bench/results/scale.json.

    python bench/bench_scale.py [--device cpu] [--n 16] [--tokens 100000] [--d-sae 24576] [--sites resid_post]
    python bench/bench_scale.py --d-sae 2048 --tokens 5000            # a quick check of the script
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import interpwidgets as iw
from interpwidgets.circuits.sites import site_kinds
from interpwidgets.interventions import parse_component
from interpwidgets.models.families import GPT2_SMALL, save_random_family
from interpwidgets.sae import SAEConfig, build_sae
from interpwidgets.sae.activations import token_batches
from interpwidgets.sae.corpus_stats import FEATURE_SEED
from interpwidgets.sae.sets import SAESet
from interpwidgets.widgets.feature_dashboard import FeatureDashboard
from interpwidgets.widgets.testing import ask

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"
GIB = 2**30
ROW_TOKENS = 64  # corpus row length
STEPS = {"circuits": ("atp", "ig", "ig-budget", "edges"), "dashboard": ("dashboard", "dashboard-rows")}


# ---- memory ------------------------------------------------------------------------------------------
def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class Peak:
    """The resident-set peak (and CUDA allocation peak) of this process from `start()` to `stop()`."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def start(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.before = _status_bytes("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.measure = "VmHWM during the step"
        except OSError:
            self.measure = "ru_maxrss of the process (set-up included)"
        self.time = time.perf_counter()

    def stop(self) -> dict:
        if self.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self.time
        if self.measure.startswith("VmHWM"):
            peak = _status_bytes("VmHWM")
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out = dict(seconds=seconds, peak_rss_gib=peak / GIB, rss_before_gib=self.before / GIB, peak_measure=self.measure)
        if self.cuda:
            out["peak_cuda_gib"] = torch.cuda.max_memory_allocated() / GIB
        return out


# ---- set-up -------------------------------------------------------------------------------------------
def build_saes(model, args, hooks: list[str]) -> SAESet:
    saes = SAESet()
    for seed, hook in enumerate(hooks):
        cfg = SAEConfig(d_in=model.cfg.d_model, d_sae=args.d_sae, architecture=args.arch, hook_name=hook,
                        k=args.k if args.arch == "topk" else None)
        saes[hook] = build_sae(cfg, seed=seed).to(args.device)
    return saes


def site_hooks(args) -> list[str]:
    return [parse_component(f"{kind}{layer}").hook_name for layer in args.layers for kind in args.sites]


def dashboard_hook(args) -> str:
    kind = "resid_post" if "resid_post" in args.sites else args.sites[0]
    return parse_component(f"{kind}{args.layers[len(args.layers) // 2]}").hook_name


# ---- the steps (each in a child process) ---------------------------------------------------------------
def run_step(step: str, args) -> list[dict]:
    """Rows `{step, seconds, peak_rss_gib, rss_before_gib, settings, ...}` of one step."""
    model = iw.load_model(str(args.model_dir), device=args.device)
    peak = Peak(args.device)
    if step in STEPS["circuits"]:
        return circuit_step(step, model, args, peak)
    return dashboard_step(step, model, args, peak)


def circuit_step(step: str, model, args, peak: Peak) -> list[dict]:
    saes = build_saes(model, args, site_hooks(args))
    task = iw.tasks.ioi(model, n=args.n, seed=0).to(args.device)
    progress = not args.quiet
    common = dict(kinds=args.sites, progress=progress)
    if step == "edges":
        effects = iw.circuits.feature_circuit(model, saes, task, method="atp", edges=False, **common).effects
        # the threshold that keeps the `edge_nodes` largest |effects| (random weights give no natural one)
        flat = torch.cat([e.abs().flatten() for e in effects.effects.values()])
        threshold = float(flat.topk(min(args.edge_nodes, flat.numel())).values[-1])
        peak.start()
        circuit = iw.circuits.feature_circuit(model, saes, task, effects=effects, node_threshold=threshold,
                                              edge_threshold=0.0, top_n=args.edge_nodes, **common)
        row = peak.stop()
        n_nodes = feature_nodes(circuit)
        return [dict(step=f"circuit edges, {n_nodes} nodes", **row, nodes=n_nodes, nonzero_edges=len(circuit.edges),
                     settings=f"the {args.edge_nodes} largest atp nodes, every edge kept; edge budget: engine default")]
    budget = {"batch_budget_mb": args.ig_budget_mb} if step == "ig-budget" else {}
    peak.start()
    method = "atp" if step == "atp" else "ig"
    circuit = iw.circuits.feature_circuit(model, saes, task, method=method, steps=args.ig_steps, edges=False,
                                          **budget, **common)
    row = peak.stop()
    name = "circuit nodes, atp" if method == "atp" else f"circuit nodes, ig {args.ig_steps} steps"
    settings = f"batch_budget_mb={args.ig_budget_mb}" if budget else "engine defaults"
    return [dict(step=name, **row, settings=settings, nodes=circuit.effects.n_nodes,
                 nodes_above_default_threshold=feature_nodes(circuit), seq_len=int(task.clean_tokens.shape[1]))]


def feature_nodes(circuit) -> int:
    """Nodes of a circuit other than the metric."""
    return sum(1 for node in circuit.nodes if node.kind != "metric")


def dashboard_step(step: str, model, args, peak: Peak) -> list[dict]:
    hook = dashboard_hook(args)
    sae = build_saes(model, args, [hook])[hook]
    rows = math.ceil(args.tokens / ROW_TOKENS)
    start = time.perf_counter()
    corpus = next(token_batches(model, None, rows, ROW_TOKENS, FEATURE_SEED))
    corpus_seconds = time.perf_counter() - start
    options = {"batch_size": args.dashboard_rows} if step == "dashboard-rows" else {}
    batch = f"batch_size={args.dashboard_rows}" if options else "batch_size default (32)"
    peak.start()
    stats = iw.sae.feature_stats(model, sae, corpus, progress=not args.quiet, **options)
    stats_row = peak.stop()
    feature = int(stats.max.argmax())
    dashboard = FeatureDashboard(model, sae, feature=feature, stats=stats)
    peak.start()
    ask(dashboard, "feature")
    summary_row = peak.stop()
    n_tokens = corpus.numel()
    out = [dict(step=f"dashboard statistics, {n_tokens:,} tokens", **stats_row, tokens=n_tokens,
                corpus_seconds=corpus_seconds, settings=f"{hook}; {batch}")]
    if step == "dashboard":
        out.append(dict(step="dashboard: one feature's summary (a click)", **summary_row, feature=feature,
                        settings=f"feature {feature}"))
    return out


# ---- the parent: one child per step, then the table ---------------------------------------------------
def child(step: str, args, folder: Path, result: Path) -> list[dict]:
    command = [sys.executable, __file__, *sys.argv[1:], "--child", step, "--model-dir", str(folder),
               "--result", str(result)]
    done = subprocess.run(command)
    if done.returncode != 0:
        return [dict(step=step, failed=f"exit status {done.returncode}", settings="see the output above")]
    return json.loads(result.read_text())


def table(rows: list[dict], cuda: bool) -> str:
    head = "| step | seconds | peak RSS (GiB) | RSS before (GiB) |" + (" peak CUDA (GiB) |" if cuda else "") + " settings |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "failed" in r or "skipped" in r:
            note = f"failed: {r['failed']}" if "failed" in r else "skipped"
            lines.append(f"| {r['step']} | {note} | | |" + (" |" if cuda else "") + f" {r['settings']} |")
            continue
        gpu = f" {r.get('peak_cuda_gib', 0):.2f} |" if cuda else ""
        lines.append(f"| {r['step']} | {r['seconds']:.2f} | {r['peak_rss_gib']:.2f} | {r['rss_before_gib']:.2f} |"
                     f"{gpu} {r['settings']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=16, help="IOI prompts for the feature circuit")
    parser.add_argument("--tokens", type=int, default=100_000, help="corpus tokens for the dashboard statistics")
    parser.add_argument("--d-sae", type=int, default=24_576, help="latents per SAE")
    parser.add_argument("--arch", choices=("topk", "jumprelu"), default="topk")
    parser.add_argument("--k", type=int, default=64, help="latents kept per token (topk)")
    parser.add_argument("--sites", type=lambda s: s.split(","), default=["resid_post"],
                        help="comma-separated site kinds: resid_post (or resid), attn, mlp (default resid_post)")
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="layers with SAEs (default: all)")
    parser.add_argument("--steps", nargs="+", choices=tuple(STEPS), default=list(STEPS))
    parser.add_argument("--ig-steps", type=int, default=10)
    parser.add_argument("--ig-budget-mb", type=float, default=256.0,
                        help="batch_budget_mb of the second integrated-gradients run")
    parser.add_argument("--edge-nodes", type=int, default=64, help="nodes of the circuit whose edges are timed")
    parser.add_argument("--dashboard-rows", type=int, default=8, help="batch_size of the second dashboard run")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        args.sites = list(site_kinds(args.sites))
    except ValueError as error:
        parser.error(f"--sites: {error}")

    if args.child:
        n_layers = json.loads((args.model_dir / "config.json").read_text())["n_layer"]
        args.layers = args.layers if args.layers is not None else list(range(n_layers))
        args.result.write_text(json.dumps(run_step(args.child, args)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = save_random_family(GPT2_SMALL, Path(tmp) / "gpt2-small")
        n_layers = json.loads((folder / "config.json").read_text())["n_layer"]
        layers = args.layers if args.layers is not None else list(range(n_layers))
        args.layers = layers
        steps = [s for group in args.steps for s in STEPS[group]]
        rows: list[dict] = []
        if "circuits" in args.steps and sorted(set(layers)) != list(range(n_layers)):
            print(f"skipping the circuit steps: a feature circuit needs an SAE at every layer (0-{n_layers - 1}), "
                  f"--layers gives {layers}", file=sys.stderr)
            rows.append(dict(step="circuit steps", skipped=True, settings="a feature circuit needs SAEs at every layer"))
            steps = [s for s in steps if s not in STEPS["circuits"]]
        for step in steps:
            rows += child(step, args, folder, Path(tmp) / f"{step}.json")

    cuda = args.device.startswith("cuda")
    hooks = site_hooks(args)
    sae_bytes = len(hooks) * 4 * (2 * 768 * args.d_sae + args.d_sae + 768)
    result = {
        "device": torch.cuda.get_device_name() if cuda else args.device,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "model": "GPT-2-small-shaped, random weights (GPT2Config())",
        "sae": {"architecture": args.arch, "k": args.k if args.arch == "topk" else None, "d_sae": args.d_sae,
                "sites": args.sites, "layers": layers, "n_saes": len(hooks), "features": len(hooks) * args.d_sae,
                "weights_gib": sae_bytes / GIB, "weights": "random"},
        "prompts": args.n, "ig_steps": args.ig_steps, "tokens": args.tokens, "dashboard_hook": dashboard_hook(args),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\n{result['device']} ({result['cpu_count']} CPUs), {result['model']}; {len(hooks)} random {args.arch} SAEs "
          f"x {args.d_sae:,} latents = {result['sae']['features']:,} features ({sae_bytes / GIB:.2f} GiB float32) "
          f"at {','.join(args.sites)} of layers {layers[0]}..{layers[-1]} ({len(layers)}); {args.n} IOI prompts, "
          f"{args.tokens:,} dashboard tokens")
    print(table(rows, cuda))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
