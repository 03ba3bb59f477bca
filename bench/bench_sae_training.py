"""SAE training throughput: interpwidgets against SAELens on the same cached activations, in one run.

    python bench/bench_sae_training.py [--tokens 1000000] [--d-sae 1024] [--k 32] [--threads 2]

1. Caches `--tokens` + `--eval-tokens` activations of the bundled teaching model at
   `--hook` (teaching corpus, seed 101) and writes them to a temporary safetensors file.
2. Trains a TopK SAE on them with interpwidgets (`iw.sae.train_on_activations`).
3. Trains the same architecture, width, k, batch size, learning rate and token count with SAELens's
   own trainer (`SAETrainer` + `TopKTrainingSAE`) in a separate virtual environment, because
   sae-lens pins transformer-lens < 4. The environment lives at `$SAELENS_VENV` (default
   `~/.cache/interpwidgets/saelens-venv`); if it is missing the script creates it with
   `pip install torch==<this torch> sae-lens` (torch first, so no CUDA wheels are pulled).
   SAELens gets the activations pre-scaled to E||x||^2 = d_in (interpwidgets scales internally).
4. Evaluates both on the held-out activations with the same code: SAELens's SAE is saved with its
   own `save_model`, loaded by `iw.sae.load` and its input scale folded back, so the comparison also
   checks that SAELens's files open here; an interpwidgets SAE saved in SAELens format is loaded
   with SAELens's `SAE.load_from_disk` and its outputs compared, so ours open there too.

Prints a table and writes bench/results/sae_training.json. Training time excludes activation
caching; both libraries run with the same torch thread count, one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "sae_training.json"
DEFAULT_VENV = Path(os.environ.get("SAELENS_VENV", Path.home() / ".cache" / "interpwidgets" / "saelens-venv"))

# Runs inside the SAELens environment: trains, saves with SAELens, and checks our SAELens-format files load there.
SAELENS_SCRIPT = r'''
import json, sys, time
import torch
from safetensors.torch import load_file
import sae_lens
from sae_lens import SAE
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
data = load_file(args["activations"])
x = data["train_scaled"]
B = args["batch_size"]

def batches():
    g = torch.Generator().manual_seed(0)
    while True:
        perm = torch.randperm(len(x), generator=g)
        for i in range(len(x) // B):
            yield x[perm[i * B:(i + 1) * B]]

sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=x.shape[1], d_sae=args["d_sae"], k=args["k"], dtype="float32", device="cpu"))
steps = args["tokens"] // B
cfg = SAETrainerConfig(
    n_checkpoints=0, checkpoint_path=None, save_final_checkpoint=False, total_training_samples=steps * B, device="cpu",
    autocast=False, lr=args["lr"], lr_end=0.0, lr_scheduler_name="constant", lr_warm_up_steps=args["warmup_steps"],
    adam_beta1=0.9, adam_beta2=0.999, lr_decay_steps=int(steps * 0.2), n_restart_cycles=1, train_batch_size_samples=B,
    dead_feature_window=args["dead_window_steps"], feature_sampling_window=2000, logger=LoggingConfig(log_to_wandb=False),
)
trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=batches())
start = time.perf_counter()
trainer.fit()
seconds = time.perf_counter() - start
sae.save_inference_model(args["out_dir"]) if hasattr(sae, "save_inference_model") else sae.save_model(args["out_dir"])

ours = SAE.load_from_disk(args["ours_dir"], device="cpu")
probe = load_file(args["activations"])["eval"][:256].float()
with torch.no_grad():
    out = ours(probe)
json.dump({"seconds": seconds, "steps": steps, "sae_lens_version": sae_lens.__version__, "torch": torch.__version__,
           "ours_in_saelens_reconstruction": out.tolist()}, open(args["result"], "w"))
'''


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import sae_lens"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating the SAELens environment at {venv} (torch=={torch.__version__.split('+')[0]}, sae-lens)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run([*pip, "sae-lens"], check=True)
    return python


def evaluate_on(sae, x: torch.Tensor) -> dict:
    with torch.no_grad():
        f = sae.encode(x)
        err = (sae.decode(f) - x).pow(2).sum()
    return {"l0": (f != 0).sum(-1).float().mean().item(),
            "explained_variance": 1 - err.item() / (x - x.mean(0)).pow(2).sum().item()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hook", default="blocks.1.hook_resid_post")
    p.add_argument("--tokens", type=int, default=1_000_000)
    p.add_argument("--eval-tokens", type=int, default=65_536)
    p.add_argument("--d-sae", type=int, default=1024)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    import interpwidgets as iw
    from interpwidgets.sae.activations import cache_activations

    python = ensure_venv(args.venv)
    model = iw.load_model(device="cpu")
    acts = cache_activations(model, [args.hook], args.tokens + args.eval_tokens, dtype=torch.float32)[args.hook]
    train_x, eval_x = acts[: args.tokens], acts[args.tokens:]
    scale = (train_x.shape[1] / train_x[:65_536].pow(2).sum(-1).mean()).sqrt().item()
    warmup, dead_steps = 50, max(1, 250_000 // args.batch_size)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_file({"train_scaled": (train_x * scale).contiguous(), "eval": eval_x.contiguous()}, str(tmp / "acts.safetensors"))

        start = time.perf_counter()
        ours = iw.sae.train_on_activations(
            train_x, hook_name=args.hook, architecture="topk", d_sae=args.d_sae, k=args.k, total_tokens=args.tokens,
            batch_size=args.batch_size, lr=args.lr, warmup_steps=warmup, dead_after_tokens=dead_steps * args.batch_size,
        )
        ours_seconds = time.perf_counter() - start
        iw.sae.save(ours, tmp / "ours")

        job = {"activations": str(tmp / "acts.safetensors"), "d_sae": args.d_sae, "k": args.k, "lr": args.lr,
               "batch_size": args.batch_size, "tokens": args.tokens, "threads": args.threads, "warmup_steps": warmup,
               "dead_window_steps": dead_steps, "out_dir": str(tmp / "saelens"), "ours_dir": str(tmp / "ours"),
               "result": str(tmp / "saelens.json")}
        (tmp / "run_saelens.py").write_text(SAELENS_SCRIPT)
        subprocess.run([str(python), str(tmp / "run_saelens.py"), json.dumps(job)], check=True,
                       env={**os.environ, "WANDB_MODE": "disabled"})
        theirs_run = json.loads((tmp / "saelens.json").read_text())
        theirs = iw.sae.load(tmp / "saelens", hook_name=args.hook)
        theirs.fold_input_output_scale(scale, scale)  # it was trained on x * scale
        in_saelens = torch.tensor(theirs_run["ours_in_saelens_reconstruction"])
        with torch.no_grad():
            ours_here = ours(eval_x[:256])
        same_outputs = torch.allclose(in_saelens, ours_here, rtol=1e-4, atol=1e-4)

    steps = args.tokens // args.batch_size
    rows = {
        "interpwidgets": {"seconds": ours_seconds, "tokens_per_second": steps * args.batch_size / ours_seconds, **evaluate_on(ours, eval_x)},
        "sae_lens": {"seconds": theirs_run["seconds"], "tokens_per_second": steps * args.batch_size / theirs_run["seconds"],
                     **evaluate_on(theirs, eval_x)},
    }
    result = {
        "benchmark": "TopK SAE training on cached teaching-model activations, same run",
        "hook": args.hook, "tokens": steps * args.batch_size, "d_in": train_x.shape[1], "d_sae": args.d_sae, "k": args.k,
        "batch_size": args.batch_size, "lr": args.lr, "threads": args.threads, "device": "cpu",
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "sae_lens_version": theirs_run["sae_lens_version"], "results": rows,
        "throughput_ratio": rows["interpwidgets"]["tokens_per_second"] / rows["sae_lens"]["tokens_per_second"],
        "explained_variance_difference": rows["interpwidgets"]["explained_variance"] - rows["sae_lens"]["explained_variance"],
        "format_check": {"saelens_sae_opens_here": True, "our_sae_opens_in_saelens_with_same_outputs": same_outputs},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=2))
    os.replace(tmp_out, args.out)

    print(f"\nTopK SAE, d_in {result['d_in']}, d_sae {args.d_sae}, k {args.k}, {result['tokens']:,} tokens, "
          f"batch {args.batch_size}, {args.threads} CPU threads")
    print(f"{'library':<14} {'seconds':>8} {'tokens/s':>10} {'L0':>6} {'EV':>7}")
    for name, r in rows.items():
        print(f"{name:<14} {r['seconds']:>8.1f} {r['tokens_per_second']:>10.0f} {r['l0']:>6.1f} {r['explained_variance']:>7.4f}")
    print(f"throughput ratio (interpwidgets / SAELens): {result['throughput_ratio']:.2f}; "
          f"EV difference: {result['explained_variance_difference']:+.4f}; formats interoperate: {same_outputs}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
