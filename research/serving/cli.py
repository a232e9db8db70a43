"""``satedge serve --config experiments/serving/<x>.yaml [--set K=V] [--out DIR]``: a whole serving run.

Builds the services from the checkpoint, evaluates every task on real EuroSAT images through the
in-process runtime, places replicas on the contact plan and simulates the multi-task workload
under microservices, monolithic on-board models and raw downlink; prints the comparison.
``--config`` may be repeated (files merged in order) and ``--set workload.rate_hz=0.1``
overrides one value (see :mod:`research.configfile`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from research.configfile import add_config_arguments

DEFAULT_OUT = Path("outputs") / "serving"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="satedge serve", description=__doc__.splitlines()[0])
    add_config_arguments(p, "serving", "workload.rate_hz=0.1")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output folder (default: {DEFAULT_OUT}/<name>)")
    return p


def print_summary(summary: dict) -> None:
    """A rich table of the schemes, then the accuracy and the verdict lines."""
    from rich.console import Console
    from rich.table import Table

    cols = [("p50_latency_s", "p50 s"), ("p95_latency_s", "p95 s"), ("missed", "missed"),
            ("onboard_memory_bytes", "on-board MB"), ("onboard_flops", "on-board GFLOP"),
            ("energy_onboard_compute_j", "on-board J/req"),
            ("energy_onboard_transmit_j", "tx J/req"), ("energy_ground_j", "ground J/req"),
            ("bytes_downlink", "down MB/req")]
    scale = {"onboard_memory_bytes": 1e-6, "onboard_flops": 1e-9, "bytes_downlink": 1e-6}
    table = Table(title=f"serving: {summary['name']}")
    table.add_column("scheme")
    for _, label in cols:
        table.add_column(label, justify="right")
    for scheme, s in summary["schemes"].items():
        table.add_row(scheme, *(f"{s[k] * scale.get(k, 1):.4g}" for k, _ in cols))
    console = Console(width=max(Console().width, 120))
    console.print(table)
    console.print({k: round(v, 4) if isinstance(v, float) else v
                   for k, v in summary["accuracy"].items()})
    for line in summary["verdict"]:
        console.print(line)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from research.serving.config import ServingConfigError, load_serve_config
    from research.serving.experiment import run_serving

    try:
        cfg = load_serve_config(args.config, args.overrides)
    except (ServingConfigError, FileNotFoundError) as err:
        print(f"satedge serve: {err}", file=sys.stderr)
        return 2
    summary = run_serving(cfg, args.out or DEFAULT_OUT / cfg.name)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
