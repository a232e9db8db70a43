"""Serving under offered load: p95 latency and requests answered in time, per scheme.

    python scripts/fig_serving_load.py --config experiments/serving/multitask.yaml \\
        --loads 16 64 256 1024 4096 --task-sets landcover landcover+coarse+retrieval \\
        --out results/serving_load
    python scripts/fig_serving_load.py --quick --out outputs/serving_load_quick

Writes ``<out>/serving_load.{csv,json,png,pdf}`` (:mod:`research.serving.load`); the JSON holds
every scheme's break load (the lowest load at which fewer than 99% of its requests meet the
deadline), the measured accuracy per modality and the command.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from research.serving.config import ServingConfigError, load_serve_config
    from research.serving.load import serving_load_sweep, write_serving_load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", action="append", type=Path, default=None, metavar="YAML",
                   help="serving YAML, repeatable (default experiments/serving/multitask.yaml; "
                        "--quick: quick.yaml)")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   metavar="KEY.SUB=VALUE", help="override one value, e.g. workload.tiles=64")
    p.add_argument("--quick", action="store_true", help="quick.yaml, three loads (< 2 min)")
    p.add_argument("--loads", type=float, nargs="+", default=None,
                   help="captures per source satellite per orbit (default 16 64 256 1024 4096; "
                        "--quick: 16 256 4096)")
    p.add_argument("--task-sets", nargs="+", default=None,
                   help="task sets, tasks joined by '+' (default: the workload's)")
    p.add_argument("--out", type=Path, default=Path("results/serving_load"))
    args = p.parse_args(argv)
    config = args.config or [Path("experiments/serving") / ("quick.yaml" if args.quick
                                                           else "multitask.yaml")]
    loads = args.loads or ([16, 256, 4096] if args.quick else [16, 64, 256, 1024, 4096])
    try:
        cfg = load_serve_config(config, args.overrides)
        task_sets = [t.split("+") for t in args.task_sets] if args.task_sets else None
        rows, meta = serving_load_sweep(cfg, loads, task_sets)
    except (ServingConfigError, ValueError, FileNotFoundError) as err:
        print(f"fig_serving_load: {err}", file=sys.stderr)
        return 2
    meta["command"] = "python " + shlex.join(["scripts/fig_serving_load.py",
                                              *(sys.argv[1:] if argv is None else argv)])
    paths = write_serving_load(rows, meta, args.out)
    for key, brk in meta["break_loads"].items():
        print(f"{key}: {'holds over the sweep' if brk is None else f'breaks at {brk:g}'}")
    print("wrote", ", ".join(str(v) for v in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
