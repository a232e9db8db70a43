"""Per-inference ledger figure and headline table: every scheme on the same captures, two orbits.

Runs ``satedge evaluate`` on ``experiments/eval/demo.yaml`` (6x11 shell with optical ISLs) and
``experiments/eval/no_isl.yaml`` (same shell, no ISLs: answers wait for a contact), optionally
with a trained codec (``--codec``, a ``CodecTask`` checkpoint at split 0) as an extra scheme.
Writes per scenario ``<out>/<scenario>/{ledger.csv,summary.{csv,json},ledger.{png,pdf}}`` and the
headline ``<out>/ledger_headline.{md,json}`` (accuracy, bits, energy, latency per scheme and
orbit).

    python scripts/fig_ledger.py --quick     # 12 captures per scenario (~1 min on 2 cores)
    python scripts/fig_ledger.py             # 200 captures (every embedded test image)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from research.eval.cli import run_scenario
from research.eval.scenario import SchemeSpec, load_scenario
from research.paths import REPO_ROOT

SCENARIOS = ("experiments/eval/demo.yaml", "experiments/eval/no_isl.yaml")
COLUMNS = ("scheme", "accuracy", "bits_per_inference", "energy_onboard_j", "latency_p50_s",
           "latency_p95_s", "mean_queue_s")


def headline(results: dict[str, list[dict]]) -> str:
    """A markdown table: one line per (orbit, scheme)."""
    lines = ["| orbit | scheme | accuracy | bits / inference | on-board energy / inference (mJ) | "
             "latency p50 (s) | latency p95 (s) | mean queue (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, summary in results.items():
        for s in summary:
            lines.append(
                f"| {name} | {s['scheme']} | {100 * s['accuracy']:.1f}% | "
                f"{s['bits_per_inference']:,.0f} | {1e3 * s['energy_onboard_j']:.3f} | "
                f"{s['latency_p50_s']:.3g} | {s['latency_p95_s']:.3g} | {s['mean_queue_s']:.3g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="12 captures per scenario")
    p.add_argument("--out", type=Path, default=Path("outputs/figures/ledger"))
    p.add_argument("--captures", type=int, default=None)
    p.add_argument("--codec", default=None, help="CodecTask checkpoint at split 0 to add")
    args = p.parse_args(argv)
    count = args.captures or (12 if args.quick else 200)
    results: dict[str, list[dict]] = {}
    for path in SCENARIOS:
        scenario = load_scenario(REPO_ROOT / path)
        scenario.captures = replace(scenario.captures, count=count)
        if args.codec:
            scenario.schemes.insert(4, SchemeSpec(name=f"codec-{Path(args.codec).stem}", kind="split",
                                                  link="codec", checkpoint=args.codec))
        result = run_scenario(scenario, args.out / scenario.name, progress=not args.quick)
        results[scenario.name] = result.summary
    table = headline(results)
    (args.out / "ledger_headline.md").write_text(table)
    (args.out / "ledger_headline.json").write_text(json.dumps(
        {"captures": count, "command": "python scripts/fig_ledger.py"
         + (" --quick" if args.quick else "") + (f" --codec {args.codec}" if args.codec else ""),
         "scenarios": results}, indent=2))
    print(table)
    return results


if __name__ == "__main__":
    main()
