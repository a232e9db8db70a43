"""Per-capture policies against on-board compute: where an option computed on board pays.

    python scripts/fig_policy_compute.py --out results/policy_compute
        # policy_s2.yaml plus the split-0 student, 4 scenes per orbit, floors 0.90 and 0.92,
        # the Jetson Nano's throughput times 0.5 ... 32
    python scripts/fig_policy_compute.py --quick --out outputs/figures/policy_compute
    python scripts/fig_policy_compute.py --replot --out results/policy_compute

Writes ``<out>/policy_compute.{csv,json,png,pdf}`` (:mod:`research.eval.compute_sweep`): every
option fixed, the greedy controller and the isolation bound at each scaled throughput.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STUDENT = ("{name: split0-student, kind: split, "
           "checkpoint: checkpoints/satvit_small_student_split0.ckpt}")
"""The learned split-0 option (issue 22's student) added to the scenario's schemes."""


def main(argv: list[str] | None = None) -> None:
    from research.eval.compute_sweep import compute_comparisons, compute_sweep, write_compute_sweep
    from research.eval.scenario import load_scenario

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/eval/policy_s2.yaml")
    p.add_argument("--option", action="append", dest="options", metavar="YAML",
                   help=f"a scheme to add as an option (repeatable; default: {STUDENT})")
    p.add_argument("--load", type=float, default=4.0,
                   help="captures per satellite per orbit")
    p.add_argument("--floors", type=float, nargs="+", default=[0.90, 0.92])
    p.add_argument("--factors", type=float, nargs="+", default=[0.5, 1, 2, 4, 8, 16, 32],
                   help="on-board throughput as multiples of the scenario's satellite profile")
    p.add_argument("--floor-mode", choices=["mean", "capture"], default="mean")
    p.add_argument("--quick", action="store_true",
                   help="experiments/eval/demo_load.yaml as it is, 1 scene per orbit, factors 1 "
                        "and 8")
    p.add_argument("--replot", action="store_true",
                   help="recompute the comparisons and redraw from <out>/policy_compute.json")
    p.add_argument("--out", default="outputs/figures/policy_compute")
    args = p.parse_args(argv)
    if args.replot:
        record = json.loads((Path(args.out) / "policy_compute.json").read_text())
        rows = record.pop("rows")
        record["comparisons"] = compute_comparisons(rows)
        paths = write_compute_sweep(rows, record, args.out)
        print("wrote", ", ".join(str(p) for p in paths.values()))
        return
    options = args.options if args.options is not None else [STUDENT]
    if args.quick:
        args.config, args.load, args.floors = "experiments/eval/demo_load.yaml", 1.0, [0.9]
        args.factors, options = [1, 8], args.options or []
    n = len(load_scenario(args.config).schemes)
    overrides = [f"schemes.{n + i}={o}" for i, o in enumerate(options)]
    scenario = load_scenario(args.config, overrides)
    rows, meta = compute_sweep(scenario, args.load, args.floors, args.factors,
                               floor_mode=args.floor_mode)
    meta["command"] = "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])
    paths = write_compute_sweep(rows, meta, args.out)
    for c in meta["comparisons"]:
        print(f"x{c['compute_factor']:g} ({c['satellite_flops'] / 1e9:.0f} GFLOP/s) floor "
              f"{c['floor']:g}: best fixed {c['best_fixed']} p95 {c['best_fixed_p95_s']:.1f} s, "
              f"greedy {c['greedy_p95_s']:.1f} s {c['greedy_options']}, bound "
              f"{c['isolation_bound_p95_s']:.1f} s")
    print("wrote", ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
