"""What the ladder of fixed schemes leaves a per-capture policy, over load and floor (issue 23).

    python scripts/fig_policy_headroom.py --sweep results/policy/policy_sweep.json \
        --out results/policy_headroom
    python scripts/fig_policy_headroom.py --quick --out outputs/figures-quick/policy_headroom
        # make figures(-quick): reads the sweep fig_policy.py has just written beside --out

Reads a policy sweep's JSON (``scripts/fig_policy.py``; no simulation is rerun) and writes
``<out>/policy_headroom.{csv,json,png,pdf}``: per (load, floor) the best fixed scheme, the lower
neighbour on the fixed frontier and the p95 reduction it would give (the headroom), the greedy
controller's reduction and its share of the headroom, and its bytes against the least a mix
keeping the floor can send (:mod:`research.eval.policy_headroom`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    from research.eval.policy_headroom import ladder_headroom, plot_headroom
    from research.records import write_rows

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", default=None,
                   help="a policy sweep's JSON (scripts/fig_policy.py; default: "
                        "policy/policy_sweep.json beside --out, so results/policy's for the "
                        "default --out and the sweep make figures has just written for its)")
    p.add_argument("--out", default="results/policy_headroom")
    p.add_argument("--quick", action="store_true",
                   help="accepted for make figures-quick; the sweep read is still the one beside "
                        "--out (fig_policy.py --quick's there)")
    p.add_argument("--target", type=float, default=0.30,
                   help="the p95 reduction to draw (issue 23: 30%% below the best fixed)")
    args = p.parse_args(argv)
    beside = Path(args.out).parent / "policy" / "policy_sweep.json"  # what make figures wrote
    path = Path(args.sweep) if args.sweep else beside
    if not path.is_file():
        p.error(f"--sweep {str(path)!r}: no such file (make one with scripts/fig_policy.py)")
    sweep = json.loads(path.read_text())
    if "rows" not in sweep:
        p.error(f"--sweep {str(path)!r}: expected a policy sweep's JSON with 'rows'")
    entries = ladder_headroom(sweep["rows"])
    given = sys.argv[1:] if argv is None else argv
    meta = {"command": "python scripts/fig_policy_headroom.py " + shlex.join(given),
            "sweep": str(path), "sweep_command": sweep.get("command"),
            "scenario": sweep.get("scenario"), "expected_accuracy": sweep.get("expected_accuracy")}
    write_rows(entries, args.out, "policy_headroom", meta=meta)
    title = (f"{sweep.get('scenario', path.stem)}: p95 reduction against the best fixed scheme "
             "meeting the floor; dotted vertical: the sensor's duty cycle")
    plot_headroom(entries, args.out, target=args.target,
                  duty_cycle=sweep.get("realistic_per_orbit"), title=title)
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    for e in entries:
        share = e.get("greedy_share_of_headroom")
        print(f"{e['per_orbit']:>5g}/orbit floor {e['floor']:g}: best fixed {e['best_fixed']}, "
              f"lower {e.get('lower_neighbour', '-')}, headroom {pct(e.get('headroom'))}, "
              f"greedy {pct(e.get('greedy_p95_reduction'))}"
              + (f" ({pct(share)} of it)" if share is not None else ""))

if __name__ == "__main__":
    main()
