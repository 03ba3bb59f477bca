"""Plot the teaching model's held-out curves from its training log.

    python scripts/release/plot_training.py [--log interpwidgets/assets/teaching/train_log.jsonl] [--out docs/teaching_training.png]

Each panel's dashed line is the model card's target (`TARGETS` of evaluate_model.py, beside this script).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluate_model import TARGETS  # the release script beside this one (its folder is on sys.path)

from interpwidgets.models.assets import TEACHING_TRAIN_LOG_FILE

PANELS = (
    ("ioi_logit_diff", "IOI logit difference (held out)"),
    ("ioi_accuracy", "IOI accuracy (held out)"),
    ("induction_accuracy", "Induction top-1, whole vocabulary"),
    ("induction_word_accuracy", "Induction top-1, words"),
    ("induction_long_accuracy", "Induction top-1, 127-token repeats"),
    ("brackets_accuracy", "Brackets: correct closer"),
)


def read_log(path: Path) -> list[dict]:
    """Records by step; a resumed run's later record for a step replaces the earlier one."""
    records = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["step"]] = record
    return [records[s] for s in sorted(records)]


def plot(records: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    rows = -(-len(PANELS) // 3)
    fig, axes = plt.subplots(rows, 3, figsize=(12, 3.2 * rows), constrained_layout=True, squeeze=False)
    for ax, (key, title) in zip(axes.flat, PANELS):
        ax.plot(steps, [r[key] for r in records], color="tab:blue")
        ax.axhline(TARGETS[key], color="tab:red", linestyle="--", linewidth=1, label=f"target {TARGETS[key]}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.legend(fontsize=8, loc="lower right")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", type=Path, default=TEACHING_TRAIN_LOG_FILE)
    parser.add_argument("--out", type=Path, default=Path("docs/teaching_training.png"))
    args = parser.parse_args()
    print(plot(read_log(args.log), args.out))


if __name__ == "__main__":
    main()
