"""Accuracy against simulated wall-clock time: collaborative vs on-board federated fine-tuning.

Runs every scheme and ablation on one scenario and one data split (shared plan and features),
writes the ledgers (CSV/JSON), ``fed_time.png/.pdf`` and ``fed_time_caption.md``, and prints the
time-to-target ratio (collaborative time to reach the on-board final accuracy within 1 point,
over the on-board time to reach it). Runs resume from their per-round checkpoints.

    python scripts/fig_fed_time.py --quick            # embedded subset, < 2 min
    python scripts/fig_fed_time.py --out results/fed  # full EuroSAT
    python scripts/fig_fed_time.py --out results/fed --seeds 0 1 2  # every run x 3 seeds
    python scripts/fig_fed_time.py --out results/fed --replot  # redraw from the ledger
    python scripts/fig_fed_time.py --config experiments/fed/split.yaml --variants collaborative \
        onboard --out results/fed_split  # the encoder trained: split learning vs on board
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from research.fed.compare import QUICK_VARIANTS, VARIANTS, applicable_variants, compare
from research.fed.config import load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="embedded subset, fewer rounds")
    p.add_argument("--out", default=None, help="output folder (default outputs/fed/fig[_quick])")
    p.add_argument("--config", default=None, help="base YAML (default experiments/fed/...)")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--variants", nargs="*", default=None, help=f"subset of {list(VARIANTS)}")
    p.add_argument("--seeds", nargs="+", type=int, default=[0],
                   help="repetitions: the smallest is every run's headline; the others repeat "
                        "every run with that partition and SGD seed (mean and spread)")
    p.add_argument("--replot", action="store_true",
                   help="only redraw the figure from <out>/fed_time_ledger.csv")
    args = p.parse_args(argv)
    if args.replot:
        from research.fed.compare import replot

        replot(Path(args.out or "results/fed"))
        return 0
    base = load_config(args.config or ("experiments/fed/quick.yaml" if args.quick
                                       else "experiments/fed/collaborative.yaml"))
    if args.rounds:
        base = base.replace(**{"train.rounds": args.rounds})
    out = Path(args.out or ("outputs/fed/fig_quick" if args.quick else "outputs/fed/fig"))
    names = args.variants or applicable_variants(base, QUICK_VARIANTS if args.quick
                                                 else list(VARIANTS))
    runs = Path("outputs/fed") / ("runs_quick" if args.quick else "runs" if args.config is None
                                  else f"runs_{base.name}")  # another config: its own runs
    command = "python scripts/fig_fed_time.py " + " ".join(sys.argv[1:] if argv is None else argv)
    compare(base, out, names, runs, command=command.strip(), seeds=tuple(args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
