"""``satedge federate --config experiments/fed/<x>.yaml [--out DIR] [--rounds N] [--engine E]``.

Runs (or resumes) one federated scheme, writes ``ledger.csv`` / ``ledger.json`` and a summary
to the output folder, prints the final accuracy and simulated time, and logs the run to W&B.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from research.fed.config import FedConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``satedge federate``; returns an exit code."""
    p = argparse.ArgumentParser(prog="satedge federate", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="federated-run YAML (experiments/fed/)")
    p.add_argument("--out", help="output folder (default: out_dir of the config)")
    p.add_argument("--rounds", type=int, help="override train.rounds")
    p.add_argument("--fresh", action="store_true", help="ignore checkpoints in the output folder")
    p.add_argument("--engine", choices=("inprocess", "flower"), default="inprocess")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
        changes = {}
        if args.out:
            changes["out_dir"] = args.out
        if args.rounds:
            changes["train.rounds"] = args.rounds
        cfg = cfg.replace(**changes) if changes else cfg
    except (FedConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.engine == "flower":
        from research.fed.flower import run_flower

        result = run_flower(cfg)
    else:
        from research.fed.runner import run

        result = run(cfg, resume=not args.fresh)
    summary = summarize(result.rows, result.energy, result.initial_accuracy)
    Path(cfg.out_dir, "summary.json").write_text(json.dumps(summary, indent=1))
    from research.tracking import log_run

    log_run("federate", cfg.to_dict(), summary, out_dir=cfg.out_dir,
            tables={"ledger": result.rows})
    print(json.dumps({k: v for k, v in summary.items() if k != "energy_per_satellite_j"},
                     indent=1))
    return 0


def summarize(rows: list[dict], energy: dict[str, list[float]], initial_accuracy: float) -> dict:
    """Headline numbers of a run: final accuracy, simulated hours, bytes and energy totals.

    Energy totals use the :mod:`research.records` names (on-board compute and transmit summed
    over satellites, ground summed over rounds); ``bytes`` maps each ``bytes_<link>`` column
    of the rows to its total.
    """
    last = rows[-1] if rows else {}
    return {
        "rounds": len(rows),
        "initial_accuracy": initial_accuracy,
        "final_accuracy": last.get("accuracy", initial_accuracy),
        "sim_hours": last.get("t_end_s", 0.0) / 3600,
        "bytes": {k[6:]: sum(r[k] for r in rows) for k in (last or {}) if k.startswith("bytes_")},
        "energy_onboard_compute_j": sum(e[0] for e in energy.values()),
        "energy_onboard_transmit_j": sum(e[1] for e in energy.values()),
        "energy_ground_j": sum(r["energy_ground_j"] for r in rows),
        "energy_per_satellite_j": energy,
        "dropped_total": sum(r["dropped"] for r in rows),
    }
