"""Validation accuracy by epoch for several fine-tuning runs (a recipe ablation), from their CSV logs.

    python scripts/fig_finetune_curves.py --run a40=path/metrics.csv --run b60=path/metrics.csv \
        --out results/finetune_mae_long --note "how the runs were made"

Writes ``curves.{json,png,pdf}``: each run's per-epoch validation accuracy and loss, its best
epoch (the checkpoint ``ModelCheckpoint`` kept), and the command that made this file.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from research.eval.curves import best_epoch, epoch_metrics  # noqa: E402
from research.figures import save_figure  # noqa: E402


def parse_run(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--run {text!r}: expected NAME=path/to/metrics.csv")
    return name, Path(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=parse_run, action="append", required=True, help="NAME=metrics.csv")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="Full fine-tuning: validation accuracy by epoch")
    parser.add_argument("--ymin", type=float, default=None, help="lower end of the accuracy axis (%%), to zoom in")
    parser.add_argument("--note", default="", help="how the runs were made (kept in the JSON)")
    args = parser.parse_args(argv)
    runs = {}
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, path in args.run:
        curves = epoch_metrics(path)
        epoch, acc = best_epoch(curves)
        runs[name] = {"best_epoch": epoch, "best_val_acc": acc, "epochs": len(curves["epoch"]), **curves}
        ax.plot([e + 1 for e in curves["epoch"]], [100 * a for a in curves["val/acc"]], label=f"{name} (best {100 * acc:.2f}%)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(args.title)
    if args.ymin is not None:
        ax.set_ylim(bottom=args.ymin)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, args.out, "curves")
    command = "python scripts/fig_finetune_curves.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    record = {"command": command, "note": args.note, "runs": runs}
    (args.out / "curves.json").write_text(json.dumps(record, indent=2) + "\n")
    for name, run in runs.items():
        print(f"{name}: best val/acc {100 * run['best_val_acc']:.2f}% at epoch {run['best_epoch']} of {run['epochs']}")


if __name__ == "__main__":
    main()
