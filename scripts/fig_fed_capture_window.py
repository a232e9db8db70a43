"""Ground-track partitions against their collection window: accuracy and skew, with IID and
Dirichlet for reference (see :mod:`research.fed.window_sweep`).

    python scripts/fig_fed_capture_window.py --out results/fed_capture_window  # ~8 min
"""

from __future__ import annotations

import argparse
import sys

from research.fed.config import load_config
from research.fed.window_sweep import capture_window_sweep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/fed/ground_track.yaml")
    p.add_argument("--out", default="outputs/fed/capture_window")
    p.add_argument("--windows", nargs="+", type=float,
                   default=[900, 1800, 5400, 21600, 86400], help="seconds")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    if args.rounds:
        cfg = cfg.replace(**{"train.rounds": args.rounds})
    command = "python scripts/fig_fed_capture_window.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    for r in capture_window_sweep(cfg, args.windows, args.seeds, args.out,
                                  command=command.strip()):
        print(f"{r['partition']:12s} {r['capture_window_s']!s:8s} seed {r['seed']}: "
              f"{100 * r['final_accuracy']:.1f}%, {r['satellites_without_data']} without data")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
