"""Model-card metrics of the teaching model on held-out data, against the model card's targets.

    python scripts/release/evaluate_model.py [--n 512] [--seed 1234] [--json docs/teaching_model_card.json] [--by-split]

The scores are `iw.tasks.evaluate` (held-out names and templates): IOI mean logit difference (IO - S) and
IO-beats-S accuracy; induction top-1 accuracy over the repeated half (random tokens of the whole vocabulary,
leading-space words, and sequences filling the context); brackets correct-closer accuracy.
Prints the model-card table; with `--by-split`, also IOI top-1 and IO-beats-S accuracy for each pairing of training
or held-out names with training or held-out templates (where the held-out gap lies); with `--json`, also writes the scores (the README's model card quotes
those in docs/teaching_model_card.json).
"""

from __future__ import annotations

import argparse
import json

import random

import torch

from interpwidgets.tasks import evaluate

TARGETS = {"ioi_logit_diff": 3.0, "ioi_accuracy": 0.95, "induction_accuracy": 0.90, "induction_word_accuracy": 0.90,
           "induction_long_accuracy": 0.90, "brackets_accuracy": 0.95}


@torch.no_grad()
def ioi_by_split(model, n: int, seed: int) -> dict[tuple[str, str], tuple[float, float]]:
    """(names split, templates split) -> (share of prompts whose top-1 token is IO, share where IO beats S)."""
    from interpwidgets.data import corpus
    from interpwidgets.tasks.base import single_token_id

    out = {}
    for names in ("train", "held_out"):
        for templates in ("train", "held_out"):
            rng, top1, beats = random.Random(seed), 0, 0
            for _ in range(n):
                sentence = corpus.ioi_sentence(rng, names, template=rng.choice(corpus.ioi_templates(templates)))
                logits = model(model.to_tokens(sentence.text))[0, -1]
                io, s = (single_token_id(model.tokenizer, " " + name) for name in (sentence.io, sentence.s))
                top1 += int(logits.argmax()) == io
                beats += bool(logits[io] > logits[s])
            out[names, templates] = (top1 / n, beats / n)
    return out


def main() -> None:
    from interpwidgets.models import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", help="also write the scores to this file")
    parser.add_argument("--by-split", action="store_true", help="also IOI by names x templates split (200 prompts each)")
    args = parser.parse_args()
    model = load_model()
    scores = evaluate(model, n=args.n, seed=args.seed)
    print("| metric (held out) | value | target |\n|---|---|---|")
    for key, value in scores.items():
        target = f">= {TARGETS[key]}" if key in TARGETS else "(no target)"
        print(f"| {key} | {value:.3f} | {target} |")
    if args.by_split:
        print("\n| IOI names | templates | top-1 is IO | IO beats S |\n|---|---|---|---|")
        for (names, templates), (top1, beats) in ioi_by_split(model, n=200, seed=args.seed).items():
            print(f"| {names} | {templates} | {top1:.3f} | {beats:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(scores, f, indent=2)


if __name__ == "__main__":
    main()
