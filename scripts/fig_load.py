"""Latency and delivery against offered load, one line per scheme, on a capacity-aware network.

    python scripts/fig_load.py --config experiments/eval/load_s2.yaml --out results/load
    python scripts/fig_load.py --config experiments/eval/load_s2.yaml --capacity unlimited \
        --out results/load_unlimited       # the earlier model, for comparison
    python scripts/fig_load.py --satellite-profile jetson_orin_nx --out results/load_orin

Writes ``<out>/load_sweep.{csv,json,png,pdf}``; the JSON carries each scheme's knee (the lowest
load at which it stops delivering everything with p95 within one orbit) and the command.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    from research.eval.load import load_sweep, write_sweep
    from research.eval.scenario import load_scenario

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/eval/load_s2.yaml")
    p.add_argument("--loads", type=float, nargs="+", default=[1, 2, 4, 8, 16, 32],
                   help="captures per satellite per orbit")
    p.add_argument("--capacity", choices=["exclusive", "unlimited"], default=None,
                   help="override the scenario's network capacity mode")
    p.add_argument("--schemes", nargs="+", default=None, help="run only these schemes")
    p.add_argument("--satellite-profile", default=None,
                   help="override the on-board device profile (e.g. jetson_orin_nx)")
    p.add_argument("--quick", action="store_true",
                   help="the demo's small sweep: experiments/eval/demo_load.yaml at 1 and 4")
    p.add_argument("--out", default="outputs/figures/load")
    args = p.parse_args(argv)
    if args.quick:
        args.config, args.loads = "experiments/eval/demo_load.yaml", [1, 4]
    scenario = load_scenario(args.config)
    if args.schemes:
        unknown = sorted(set(args.schemes) - {s.name for s in scenario.schemes})
        if unknown:
            p.error(f"unknown scheme(s) {unknown}; the scenario has "
                    f"{[s.name for s in scenario.schemes]}")
        scenario.schemes = [s for s in scenario.schemes if s.name in args.schemes]
    if args.satellite_profile:
        from devices import get_device

        scenario.satellite_profile = get_device(args.satellite_profile).require_throughput()
    network = replace(scenario.network, capacity=args.capacity) if args.capacity else None
    rows, meta = load_sweep(scenario, args.loads, network=network)
    meta["command"] = "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])
    paths = write_sweep(rows, meta, args.out)
    for name, knee in meta["knees"].items():
        print(f"{name:>16}: knee at {knee if knee is not None else '>' + str(max(args.loads))} "
              "captures per orbit")
    print("wrote", ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
