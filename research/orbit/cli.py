"""``satedge orbit ...``: compute and save a scenario's contact plan.

``satedge orbit plan --config experiments/orbit/demo_6x11.yaml [--out DIR]`` writes
``DIR/<name>.npz`` (the plan) and ``DIR/<name>_summary.json`` and prints the summary.
``--config`` may be repeated (files merged in order) and ``--set isl.topology=none`` overrides
one value (see :mod:`research.configfile`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from research.configfile import add_config_arguments

DEFAULT_OUT = Path("outputs") / "orbit"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="satedge orbit", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="build a contact plan from a scenario YAML")
    add_config_arguments(plan, "scenario", "isl.topology=none")
    plan.add_argument("--out", type=Path, default=DEFAULT_OUT,
                      help=f"output folder (default: {DEFAULT_OUT})")
    return p


def run_plan(config: Path | Sequence[Path], out: Path, overrides: Sequence[str] = ()) -> dict:
    """Build, save and summarise one scenario (one YAML or several merged in order, then
    ``overrides``); returns the summary (with file paths)."""
    from research.orbit.builder import BuildStats
    from research.orbit.config import load_config

    cfg = load_config(config, overrides)
    stats = BuildStats()
    t0 = time.perf_counter()
    plan = cfg.build(stats=stats)
    build_s = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    path = plan.save(out / f"{cfg.name}.npz")
    summary = {"scenario": cfg.name, "epoch": plan.grid.to_dict()["epoch"], **plan.summary(),
               "build_s": round(build_s, 3),
               "build_stage_s": {k: round(v, 3) for k, v in stats.seconds.items()},
               "plan_file": str(path)}
    spath = out / f"{cfg.name}_summary.json"
    spath.write_text(json.dumps(summary, indent=2) + "\n")
    summary["summary_file"] = str(spath)
    return summary


def _print(summary: dict) -> None:
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"contact plan: {summary['scenario']}")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        for k, v in summary.items():
            if k in ("scenario", "build_stage_s"):
                continue
            table.add_row(k, f"{v:,.4g}" if isinstance(v, float) else str(v))
        Console().print(table)
    except ImportError:  # pragma: no cover - rich is a dependency, stay usable without it
        print(json.dumps(summary, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    from research.orbit.config import OrbitConfigError
    from research.orbit.propagate import PropagationError

    try:
        if args.command == "plan":
            _print(run_plan(args.config, args.out, args.overrides))
    except (OrbitConfigError, PropagationError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
