"""Train the bundled teaching model on the generated corpus.

    python scripts/release/train_model.py [--steps 5000] [--cooldown 1500] [--seed 0] [--resume CKPT]

Schedule: linear warm-up, then a constant learning rate for `--steps`, then a linear cool-down over
`--cooldown` steps. Each step's batch is a function of (seed, step) alone, so a run resumed from a
stable-phase checkpoint is identical to an uninterrupted one. Writes checkpoints (atomically) and a
JSON-lines log to `--out`, and on completion the weights, config and log into the package assets
(`interpwidgets/assets/teaching/`, paths in `interpwidgets.models.assets`). The training mixture is
`interpwidgets.data.mixture.training_batch`; the held-out scores logged are `iw.tasks.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from interpwidgets.data.mixture import training_batch
from interpwidgets.models.assets import TEACHING_CONFIG_FILE, TEACHING_DIR, TEACHING_TRAIN_LOG_FILE, TEACHING_WEIGHTS_FILE
from interpwidgets.models.teaching import TEACHING_CONFIG, build_teaching_model
from interpwidgets.tasks import evaluate


def learning_rate(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if step < args.steps:
        return args.lr
    return args.lr * max(0.05, 1 - (step - args.steps) / max(1, args.cooldown))


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000, help="steps at the constant learning rate")
    parser.add_argument("--cooldown", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256, help="rows as long as the context: every position is trained")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--keep-every", type=int, default=500, help="keep a stable-phase checkpoint this often")
    parser.add_argument("--out", default="artifacts/teaching")
    parser.add_argument("--resume", help="checkpoint to continue from")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--no-install", action="store_true", help="do not write the result into the package")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_teaching_model(seed=args.seed)
    net = model.original_model
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.05)
    start = 0
    if args.resume:
        state = torch.load(args.resume, weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
    total = args.steps + args.cooldown
    log = open(out / "train_log.jsonl", "a")
    started = time.time()
    bar = tqdm(range(start, total), initial=start, total=total, desc="training teaching model")
    for step in bar:
        net.train()
        tokens = training_batch(model.tokenizer, args.seed, step, args.batch, args.seq_len)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        logits = net(tokens)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        done = step + 1
        if done % args.eval_every == 0 or done == total:
            net.eval()
            scores = evaluate(model, n=128)
            record = {"step": done, "loss": loss.item(), "lr": learning_rate(step, args),
                      "minutes": (time.time() - started) / 60, **scores}
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{loss.item():.3f}", ioi=f"{scores['ioi_logit_diff']:.2f}",
                            ind=f"{scores['induction_accuracy']:.2f}", br=f"{scores['brackets_accuracy']:.2f}")
            state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": done}
            save_atomic(state, out / "last.pt")
            if done <= args.steps and done % args.keep_every == 0:
                shutil.copy(out / "last.pt", out / f"stable_{done}.pt")
    log.close()
    if not args.no_install:
        install(model, args, out)


def install(model, args: argparse.Namespace, out: Path) -> None:
    """Write the trained weights (TransformerLens parameter names), their config and the log into the assets."""
    from safetensors.torch import save_file

    TEACHING_DIR.mkdir(parents=True, exist_ok=True)
    tmp = TEACHING_WEIGHTS_FILE.with_suffix(".tmp")
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.chmod(tmp, 0o644)
    os.replace(tmp, TEACHING_WEIGHTS_FILE)
    config = {"architecture": TEACHING_CONFIG, "overrides": {}, "training": {
        k: getattr(args, k) for k in ("steps", "cooldown", "warmup", "lr", "batch", "seq_len", "seed")}}
    TEACHING_CONFIG_FILE.write_text(json.dumps(config, indent=2))
    shutil.copy(out / "train_log.jsonl", TEACHING_TRAIN_LOG_FILE)


if __name__ == "__main__":
    main()
