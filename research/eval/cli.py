"""``satedge evaluate --config experiments/eval/<scenario>.yaml [--set K=V]``: the per-inference ledger.

Writes ``ledger.csv`` (one row per inference), ``summary.{csv,json}`` and ``ledger.{png,pdf}``
under ``--out`` (default: the scenario's ``out``), prints the summary table and logs the run to
Weights & Biases (offline unless ``WANDB_MODE`` says otherwise). ``--config`` may be repeated
(files merged in order) and ``--set captures.count=50`` overrides one value (see
:mod:`research.configfile`); ``--captures N`` is a shorthand for ``--set captures.count=N``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from research.configfile import add_config_arguments
from research.eval.evaluate import EvalResult, evaluate
from research.eval.report import plot_summary, print_summary
from research.eval.scenario import EvalScenario, ScenarioError, load_scenario
from research.orbit.config import OrbitConfigError
from research.tracking import log_run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="satedge evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, "scenario", "captures.count=50")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: scenario's)")
    p.add_argument("--captures", type=int, default=None, help="override captures.count")
    p.add_argument("--no-progress", action="store_true")
    return p


def run_scenario(scenario: EvalScenario, out: Path, progress: bool = True) -> EvalResult:
    """Evaluate, print, plot and log one scenario."""
    result = evaluate(scenario, out=out, progress=progress)
    reference = next((s.name for s in scenario.schemes if s.kind == "image"
                      and s.format == "raw"), None)
    print_summary(result.summary, f"per-inference ledger: {scenario.name}", reference)
    for name, why in result.skipped.items():
        print(f"skipped {name}: {why}")
    figures = plot_summary(result.summary, out, f"{scenario.name}: per-inference cost")
    log_run("evaluate", scenario.raw, {s["scheme"]: s for s in result.summary}, out_dir=out,
            figures=figures, tables={"summary": result.summary})
    print(f"wrote {result.paths['ledger']}, {result.paths['summary_json']}, {figures[0]}")
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        scenario = load_scenario(args.config, args.overrides)
        if args.captures is not None:
            if args.captures < 1:
                raise ScenarioError(f"--captures must be >= 1, got {args.captures}")
            scenario.captures = replace(scenario.captures, count=args.captures)
    except (ScenarioError, OrbitConfigError, FileNotFoundError) as err:
        print(f"satedge evaluate: {err}", file=sys.stderr)
        return 2
    run_scenario(scenario, args.out or Path(scenario.out), progress=not args.no_progress)
    return 0
