"""How the training images are dealt to satellites: ground track against Dirichlet label skew.

Writes ``fed_partition.png/.pdf``, ``fed_partition_counts.csv`` and
``fed_partition_summary.json`` (see :mod:`research.fed.partition_figure`).

    python scripts/fig_fed_partition.py --out results/fed_partition   # ~2 min
"""

from __future__ import annotations

import argparse
import sys

from research.fed.config import load_config
from research.fed.partition_figure import partition_figure


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/fed/collaborative.yaml")
    p.add_argument("--out", default="outputs/fed/partition")
    p.add_argument("--window", type=float, default=None, help="capture window (s)")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    if args.window is not None:
        cfg = cfg.replace(**{"data.capture_window_s": args.window})
    command = "python scripts/fig_fed_partition.py " + " ".join(sys.argv[1:] if argv is None
                                                                 else argv)
    for path in partition_figure(cfg, args.out, command=command.strip()):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
