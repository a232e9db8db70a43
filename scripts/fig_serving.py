"""Microservices vs on-board (shared encoder; one model per task) vs ground (raw, JPEG) on one workload.

    python scripts/fig_serving.py [--quick] [--out DIR] [--config YAML]

Runs ``satedge serve`` (``experiments/serving/multitask.yaml``; ``--quick``: ``quick.yaml``),
then draws ``serving.png/.pdf``: latency distribution per scheme (p50/p95 marked) and on-board
memory, on-board compute, on-board energy and downlinked bytes per request. Writes
``serving_schemes.csv``, ``summary.json``, ``outcomes.{csv,json}`` (per-request ledger,
:mod:`research.records` names) and ``serving_caption.md``, and prints where microservices beat or
do not beat each baseline. The experiment is :func:`research.serving.figure.serving_figure`; this
script parses the arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny random model, small shell (<2 min)")
    p.add_argument("--out", type=Path, default=REPO / "results" / "serving")
    p.add_argument("--config", type=Path, default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    import matplotlib

    matplotlib.use("Agg")
    from research.serving.config import load_serve_config
    from research.serving.figure import serving_figure

    name = "quick" if args.quick else "multitask"
    cfg = load_serve_config(args.config or REPO / "experiments" / "serving" / f"{name}.yaml")
    summary = serving_figure(cfg, args.out)
    for line in summary["verdict"]:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
