"""Label every feature of the bundled SAEs and transcoders: `labels.json` beside each one's weights.

    python scripts/release/label_saes.py [--batches 16] [--batch-size 32]

Each dictionary's labels come from `iw.sae.label_features` on the teaching model's held-out corpus (the stream
`feature_stats` reads, corpus seed 103: neither SAE training's 101 nor evaluation's 102 and 104), 16 batches of
32 rows of 128 tokens by default. Labels edited by hand in a bundled file are kept. The run is deterministic for a
given torch build and thread count; it prints each dictionary's time, file size and dead count.
"""

from __future__ import annotations

import argparse
import time

import torch

import interpwidgets as iw
from interpwidgets.sae.labels import DEAD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=16, help="corpus batches per dictionary")
    parser.add_argument("--batch-size", type=int, default=32, help="rows of 128 tokens per batch")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = iw.load_model(device="cpu")
    saes = iw.sae.pretrained(model)
    start = time.perf_counter()
    print(f"{'dictionary':<32} {'seconds':>8} {'KB':>6} {'dead':>5} {'edited':>6}")
    for hook, sae in saes.items():
        t = time.perf_counter()
        labels = iw.sae.label_features(model, sae, n_batches=args.batches, batch_size=args.batch_size, progress=False)
        dead = sum(text == DEAD for text in labels.values())
        print(f"{hook:<32} {time.perf_counter() - t:8.1f} {labels.path.stat().st_size / 1024:6.0f} {dead:5d} "
              f"{len(labels.edited):6d}")
    print(f"{len(saes)} dictionaries labelled in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
