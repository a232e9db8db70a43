"""Secure aggregation's cost in a federated run: bytes and simulated time per round, measured.

Runs plain FedAvg and SecAgg (64- and 32-bit) for the ring and the star on one plan, partition
and cached features (:mod:`research.fed.secagg_overhead`); runs resume from their checkpoints.

    python scripts/fig_fed_secagg.py --quick                     # subset, 3 rounds, ~2 min
    python scripts/fig_fed_secagg.py --out results/fed_secagg --days 16   # full EuroSAT, 66 sats
    python scripts/fig_fed_secagg.py --out results/fed_secagg --replot
    python scripts/fig_fed_secagg.py --out results/fed_secagg --regime 6x11 12x11 12x22 (3 days)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from research.fed.config import load_config


def main(argv: list[str] | None = None) -> int:
    from research.fed.secagg_overhead import VARIANTS, regime, replot, sweep

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="embedded subset, 3 rounds, plain and 64-bit SecAgg")
    p.add_argument("--config", default=None, help="base YAML (default experiments/fed/...)")
    p.add_argument("--out", default=None, help="output folder (default outputs/fed/secagg[_quick])")
    p.add_argument("--runs", default=None, help="run folders (default outputs/fed/secagg_runs"
                   "[_quick]); use another for another base config")
    p.add_argument("--topologies", nargs="+", default=["ring", "star"])
    p.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS),
                   help="default: all (quick: plain secagg64)")
    p.add_argument("--target", type=float, default=0.8, help="accuracy for time-to-accuracy")
    p.add_argument("--replot", action="store_true", help="only redraw from <out>")
    p.add_argument("--regime", nargs="+", default=None, metavar="PLANESxSATS",
                   help="instead: plain against SecAgg timing and bytes over Walker shells, "
                        "e.g. 6x11 12x11 12x22 (the base scenario's stations)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per --regime run")
    p.add_argument("--days", type=float, default=None,
                   help="plan length (default: the config's scenario; --regime: 3 days); the "
                        "star with SecAgg needs 16 for 30 rounds")
    args = p.parse_args(argv)
    suffix = "_quick" if args.quick else ""
    out = Path(args.out or f"outputs/fed/secagg{suffix}")
    if args.replot:
        replot(out)
        return 0
    base = load_config(args.config or ("experiments/fed/quick.yaml" if args.quick
                                       else "experiments/fed/collaborative.yaml"))
    if args.quick:
        base = base.replace(**{"train.rounds": 3})
    variants = args.variants or (["plain", "secagg64"] if args.quick else list(VARIANTS))
    command = "python scripts/fig_fed_secagg.py " + " ".join(sys.argv[1:] if argv is None
                                                             else argv)
    if args.regime:
        from research.fed.scenarios import parse_shells

        try:
            shells = parse_shells(args.regime)
        except ValueError as err:
            p.error(f"--regime: {err}")
        regime(base, out, shells, topologies=args.topologies, rounds=args.rounds,
               duration_s=(args.days or 3.0) * 86400, command=command)
        print(f"wrote {out}")
        return 0
    if args.days:
        from research.fed.scenarios import with_duration

        base = base.replace(scenario=with_duration(base, args.days * 86400))
    sweep(base, out, topologies=args.topologies, variants=variants,
          runs=Path(args.runs or f"outputs/fed/secagg_runs{suffix}"), target=args.target,
          command=command)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
