"""Per-capture policies (greedy on-board controller, offline LP bounds) against every fixed scheme.

    python scripts/fig_policy.py --config experiments/eval/policy_s2.yaml --out results/policy
    python scripts/fig_policy.py --quick --out outputs/figures/policy   # the demo's tiny sweep
    python scripts/fig_policy.py --replot --out results/policy   # redraw from the JSON only
    python scripts/fig_policy.py --config experiments/eval/policy_s2.yaml --relay-hops 2 \
        --set 'schemes.10={name: split0-student, kind: split, checkpoint: checkpoints/satvit_small_student_split0.ckpt}' \
        --set name=policy_s2_student --floors 0.9 0.92 0.94 --out results/policy_student_hops2
        # one more option (the split-0 student), the controller counting contacts 2 ISL hops
        # away (the default, auto, is the plan's reach: 4 hops on this constellation)

Writes ``<out>/policy_sweep.{csv,json,png,pdf}``: one row per (load, policy, floor); the JSON
carries per (load, floor) the best fixed scheme meeting the floor and the policies' ratios to it
and to the oracle (``comparisons``), and the command.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def relay_hops(text: str) -> int | str:
    """``--relay-hops``: a non-negative integer or ``auto``."""
    if text == "auto":
        return text
    try:
        hops = int(text)
    except ValueError:
        hops = -1
    if hops < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 or 'auto', got {text!r}")
    return hops


def main(argv: list[str] | None = None) -> None:
    from research.eval.policy_sweep import policy_sweep, write_policy_sweep
    from research.eval.scenario import load_scenario

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/eval/policy_s2.yaml")
    p.add_argument("--loads", type=float, nargs="+", default=[2, 4, 8, 16, 25.7, 32],
                   help="captures per satellite per orbit (25.7: the Sentinel-2 duty cycle)")
    p.add_argument("--floors", type=float, nargs="+", default=[0.92, 0.95, 0.96, 0.965],
                   help="expected-accuracy floors of the adaptive policies")
    p.add_argument("--floor-mode", choices=["mean", "capture"], default="mean")
    p.add_argument("--oracle-max-load", type=float, default=math.inf,
                   help="skip the LP above this load (its size grows with the captures)")
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY.SUB=VALUE",
                   help="override a scenario value, e.g. add an option: --set "
                        "'schemes.10={name: split0-student, kind: split, checkpoint: ...}'")
    p.add_argument("--relay-hops", type=relay_hops, default="auto",
                   help="ISL hops within which the greedy controller counts other satellites' "
                        "contacts: an integer, or auto (the fewest within which every "
                        "satellite nearly always has a relay in view of a station)")
    p.add_argument("--quick", action="store_true",
                   help="experiments/eval/demo_load.yaml at 1 and 4 captures per orbit")
    p.add_argument("--replot", action="store_true",
                   help="recompute the comparisons and redraw from <out>/policy_sweep.json")
    p.add_argument("--out", default="outputs/figures/policy")
    args = p.parse_args(argv)
    if args.replot:
        import json

        from research.eval.policy_sweep import comparisons

        record = json.loads((Path(args.out) / "policy_sweep.json").read_text())
        rows = record.pop("rows")
        record["comparisons"] = comparisons(rows)
        paths = write_policy_sweep(rows, record, args.out)
        print("wrote", ", ".join(str(p) for p in paths.values()))
        return
    if args.quick:
        args.config, args.loads, args.floors = "experiments/eval/demo_load.yaml", [1, 4], [0.9]
    scenario = load_scenario(args.config, args.overrides)
    rows, meta = policy_sweep(scenario, args.loads, args.floors, floor_mode=args.floor_mode,
                              oracle_max_load=args.oracle_max_load, relay_hops=args.relay_hops)
    meta["command"] = "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])
    paths = write_policy_sweep(rows, meta, args.out)
    for c in meta["comparisons"]:
        print(f"load {c['per_orbit']:>5g} floor {c['floor']:.3f}: best fixed "
              f"{c['best_fixed_latency']} p95 {c['best_fixed_p95_s']:.0f} s; greedy p95 "
              f"{c.get('greedy_latency_p95_s', math.nan):.0f} s (isolation bound "
              f"{c.get('isolation_bound_p95_s', math.nan):.0f} s), offline "
              f"{c.get('oracle_latency_p95_s', math.nan):.0f} s (mean bound "
              f"{c.get('bound_latency_mean_s', math.nan):.0f} s); energy fixed "
              f"{c['best_fixed_energy_j']:.0f} J greedy {c.get('greedy_energy_energy_j', math.nan):.0f}"
              f" J bound {c.get('bound_energy_j', math.nan):.0f} J")
    print("wrote", ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
