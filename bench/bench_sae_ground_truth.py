"""Feature recovery on synthetic superposition (Sharkey et al.), swept over problem sizes.

    python bench/bench_sae_ground_truth.py [--dims 16 32 64] [--ratios 2 4] [--architectures topk relu ...]

For each input width d and feature ratio r (n_features = r * d), with 3 features active on average,
independent and correlated: train each architecture with 2 * n_features latents and report the mean
max cosine similarity between the true feature directions and the learned decoder rows (1.0 =
every feature found), L0 and explained variance on fresh samples. Prints a table and writes
bench/results/sae_ground_truth.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from interpwidgets.sae import train_on_activations
from interpwidgets.sae.synthetic import make_sparse_features, mean_max_cosine

RESULTS = Path(__file__).resolve().parent / "results" / "sae_ground_truth.json"
OPTIONS = {
    "topk": dict(k=4), "batchtopk": dict(k=4), "jumprelu": dict(),
    "relu": dict(lr=3e-3), "gated": dict(lr=3e-3),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--ratios", type=int, nargs="+", default=[2, 4])
    p.add_argument("--architectures", nargs="+", default=list(OPTIONS))
    p.add_argument("--mean-active", type=float, default=3.0)
    p.add_argument("--tokens", type=int, default=800_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    print(f"{'d':>4} {'n_feat':>6} {'corr':>5} {'arch':>10} {'MMCS':>6} {'L0':>6} {'EV':>6} {'s':>6}")
    for d in args.dims:
        for ratio in args.ratios:
            for correlated in (False, True):
                features = make_sparse_features(d, ratio * d, args.mean_active, correlated=correlated, seed=0)
                x, _ = features.sample(100_000, torch.Generator().manual_seed(1))
                test, _ = features.sample(8192, torch.Generator().manual_seed(2))
                for arch in args.architectures:
                    start = time.perf_counter()
                    sae = train_on_activations(
                        x, architecture=arch, d_sae=2 * ratio * d, total_tokens=args.tokens, batch_size=1024,
                        buffer_tokens=16_384, dead_after_tokens=20_000, resample_every=100, progress=False, **OPTIONS[arch],
                    )
                    seconds = time.perf_counter() - start
                    with torch.no_grad():
                        f = sae.encode(test)
                        ev = 1 - (sae.decode(f) - test).pow(2).sum().item() / (test - test.mean(0)).pow(2).sum().item()
                    row = {"d": d, "n_features": ratio * d, "correlated": correlated, "architecture": arch,
                           "mean_max_cosine": mean_max_cosine(sae.W_dec, features.directions),
                           "l0": (f != 0).sum(-1).float().mean().item(), "explained_variance": ev, "seconds": seconds}
                    rows.append(row)
                    print(f"{d:>4} {ratio * d:>6} {str(correlated):>5} {arch:>10} {row['mean_max_cosine']:>6.3f} "
                          f"{row['l0']:>6.1f} {ev:>6.3f} {seconds:>6.1f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"benchmark": "synthetic feature recovery", "mean_active": args.mean_active,
                               "tokens": args.tokens, "rows": rows}, indent=2))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
