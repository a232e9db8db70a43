"""``satedge federate --config experiments/fed/<x>.yaml [--set K=V] [--out DIR] [--rounds N] [--engine E]``.

``--config`` may be repeated (files merged in order) and ``--set train.lr=0.2`` overrides one
value (see :mod:`research.configfile`); ``--out`` and ``--rounds`` are shorthands for
``--set out_dir=...`` and ``--set train.rounds=...``.

Runs (or resumes) one federated scheme, writes ``ledger.csv`` / ``ledger.json`` and a summary
to the output folder, prints the final accuracy and simulated time, and logs the run to W&B.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from research.configfile import add_config_arguments
from research.fed.config import FedConfigError, load_config
from research.fed.ledger import summarize


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``satedge federate``; returns an exit code."""
    p = argparse.ArgumentParser(prog="satedge federate", description=__doc__.splitlines()[0])
    add_config_arguments(p, "federated-run (experiments/fed/)", "train.rounds=5")
    p.add_argument("--out", help="output folder (default: out_dir of the config)")
    p.add_argument("--rounds", type=int, help="override train.rounds")
    p.add_argument("--fresh", action="store_true", help="ignore checkpoints in the output folder")
    p.add_argument("--engine", choices=("inprocess", "flower"), default="inprocess")
    p.add_argument("--flower-nodes", choices=("satellite", "plane"), default="satellite",
                   help="one Flower SuperNode per satellite, or per orbital plane (large shells)")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
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

        result = run_flower(cfg, resume=not args.fresh, nodes=args.flower_nodes)
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
