"""Regime map: where collaborative federated fine-tuning beats the best on-board run.

Simulates each (backbone x on-board compute x ISLs x feature reuse) point for the rounds the
trained run needs (read from its ledger), and writes ``fed_regime.png/.pdf``, the rows
(CSV/JSON) and the caption (see :mod:`research.fed.regime` for what is measured and what is
assumed).

    python scripts/fig_fed_regime.py --out results/fed_regime           # ~1 h on one core
    python scripts/fig_fed_regime.py --quick --out outputs/fed/regime   # 2 backbones x 2 devices
    python scripts/fig_fed_regime.py --out results/fed_regime --replot  # from the simulated rows
    python scripts/fig_fed_regime.py --config experiments/fed/split.yaml --ledger \
        results/fed_split/fed_time_ledger.json --seeds 0 1 2 ...  # each seed's partition
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from research.fed.compare import seed_changes
from research.fed.config import load_config
from research.fed.regime import regime_map
from research.fed.runner import prepare
from research.fed.scenarios import without_isls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/fed/collaborative.yaml")
    p.add_argument("--ledger", nargs="+", default=["results/fed/fed_time_ledger.json"],
                   help="trained comparison ledger(s); rows of several files are joined (e.g. "
                        "one seed per file); --run's rows set the rounds")
    p.add_argument("--run", default="collaborative",
                   help="the ledger run whose rounds to the target every configuration is "
                        "simulated for (e.g. collab_int8_both)")
    p.add_argument("--out", default="outputs/fed/regime")
    p.add_argument("--backbones", nargs="+",
                   default=["satvit_small", "satvit_base", "satvit_large", "satvit_huge"])
    p.add_argument("--factors", nargs="+", type=float, default=[1 / 256, 1 / 32, 1 / 4, 1, 8],
                   help="on-board throughput as multiples of the Jetson Nano's")
    p.add_argument("--reuse", nargs="+", choices=["reuse", "recompute"],
                   default=["reuse", "recompute"], help="feature panels to simulate")
    p.add_argument("--quick", action="store_true", help="2 backbones x 2 factors, reuse only")
    p.add_argument("--seeds", nargs="+", type=int, default=[0],
                   help="the ledger's seeds: each with its own partition and rounds (mean and "
                        "spread of every ratio)")
    p.add_argument("--replot", action="store_true",
                   help="only rebuild the points and redraw the figure from "
                        "<out>/fed_regime_runs.json")
    args = p.parse_args(argv)
    if args.replot:
        from research.fed.regime import replot

        replot(Path(args.out))
        return 0
    cfg = load_config(args.config)
    backbones, factors = args.backbones, args.factors
    reuse = tuple(r == "reuse" for r in args.reuse)
    if args.quick:
        backbones, factors, reuse = ["satvit_small", "satvit_huge"], [1 / 256, 1.0], (True,)
    rows = []
    for path in args.ledger:
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            p.error(f"--ledger {path}: cannot read a ledger ({err})")
        rows += record["rows"] if isinstance(record, dict) else record
    trained = [r for r in rows if r.get("run", "collaborative") == args.run]
    if not trained:
        p.error(f"--run {args.run!r}: no rows in {args.ledger}; its runs are "
                f"{sorted({r.get('run', 'collaborative') for r in rows})}")
    seeds = sorted(set(args.seeds))
    setup = prepare(cfg.replace(**seed_changes(seeds[0])), cache_dir="outputs/fed/cache")
    command = "python scripts/fig_fed_regime.py " + " ".join(sys.argv[1:] if argv is None
                                                             else argv)
    points = regime_map(cfg, setup, trained, Path(args.out), backbones=backbones,
                        factors=factors, isl_scenario=without_isls(cfg.scenario), reuse=reuse,
                        command=command.strip(), seeds=seeds,
                        setup_for_seed=lambda s: prepare(cfg.replace(**seed_changes(s)),
                                                         plan=setup.plan,
                                                         cache_dir="outputs/fed/cache"))
    for pt in points:
        print(f"{pt['backbone']:13s} x{pt['compute_factor']:<8g} {pt['isls']:6s} "
              f"reuse={pt['reuse_features']!s:5s} ratio={pt['ratio']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
