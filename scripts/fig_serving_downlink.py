"""Serving against the downlink rate: where bytes, not on-board compute, decide the winner.

    python scripts/fig_serving_downlink.py --config experiments/serving/codec.yaml \\
        --rates 0.125 0.25 0.5 1 2 4 16 none --load 1024 \\
        --task-sets landcover landcover+coarse+retrieval --out results/serving_downlink
    (those are the defaults: python scripts/fig_serving_downlink.py reproduces it)
    python scripts/fig_serving_downlink.py --quick --out outputs/serving_downlink_quick
    python scripts/fig_serving_downlink.py --replot --out results/serving_downlink

Writes ``<out>/serving_downlink.{csv,json,png,pdf}`` (:mod:`research.serving.downlink`); the
JSON holds, per cap and task set, the microservices' tiles in time over the best other scheme's
(``advantage``), the measured accuracy and payload sizes per modality, and the command.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rate(text: str) -> float | None:
    """Mbit/s, or ``none`` for the link model's own rate."""
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected Mbit/s > 0 or 'none', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected Mbit/s > 0 or 'none', got {text!r}")
    return value * 1e6


def main(argv: list[str] | None = None) -> int:
    from research.serving.config import ServingConfigError, load_serve_config
    from research.serving.downlink import downlink_sweep, write_downlink_sweep

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", action="append", type=Path, default=None, metavar="YAML",
                   help="serving YAML, repeatable (default experiments/serving/codec.yaml; "
                        "--quick: quick.yaml)")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   metavar="KEY.SUB=VALUE", help="override one value, e.g. workload.tiles=64")
    p.add_argument("--quick", action="store_true", help="quick.yaml, three caps (< 2 min)")
    p.add_argument("--rates", type=_rate, nargs="+", default=None,
                   help="downlink modem caps in Mbit/s, 'none' for uncapped (default 0.125 0.25 "
                        "0.5 1 2 4 16 none; --quick: 0.5 5 none)")
    p.add_argument("--load", type=float, default=1024.0,
                   help="captures per source satellite per orbit (default 1024)")
    p.add_argument("--task-sets", nargs="+", default=None,
                   help="task sets, tasks joined by '+' (default: land cover alone, and the "
                        "workload's tasks)")
    p.add_argument("--out", type=Path, default=Path("results/serving_downlink"))
    p.add_argument("--replot", action="store_true",
                   help="only redraw the figure from <out>/serving_downlink.json")
    args = p.parse_args(argv)
    if args.replot:
        import json

        from research.serving.downlink import plot_downlink_sweep

        path = args.out / "serving_downlink.json"
        if not path.is_file():
            print(f"fig_serving_downlink: --replot needs {path}", file=sys.stderr)
            return 2
        meta = json.loads(path.read_text())
        for f in plot_downlink_sweep(meta.pop("rows"), meta, args.out):
            print("wrote", f)
        return 0
    config = args.config or [Path("experiments/serving") / ("quick.yaml" if args.quick
                                                           else "codec.yaml")]
    rates = args.rates or ([0.5e6, 5e6, None] if args.quick
                           else [0.125e6, 0.25e6, 0.5e6, 1e6, 2e6, 4e6, 16e6, None])
    try:
        cfg = load_serve_config(config, args.overrides)
        task_sets = ([t.split("+") for t in args.task_sets] if args.task_sets else
                     list(map(list, dict.fromkeys([("landcover",), tuple(cfg.workload.tasks)]))))
        rows, meta = downlink_sweep(cfg, rates, args.load, task_sets)
    except (ServingConfigError, ValueError, FileNotFoundError) as err:
        print(f"fig_serving_downlink: {err}", file=sys.stderr)
        return 2
    meta["command"] = "python " + shlex.join(["scripts/fig_serving_downlink.py",
                                              *(sys.argv[1:] if argv is None else argv)])
    paths = write_downlink_sweep(rows, meta, args.out)
    for a in meta["advantage"]:
        cap = "none" if a["downlink_max_rate_bps"] is None else \
            f"{a['downlink_max_rate_bps'] / 1e6:g} Mbit/s"
        print(f"cap {cap}, {a['tasks']}: microservice / {a['best_other']} = {a['ratio']:.3g}"
              f"{'' if a['p95_within_deadline'] else ' (p95 past the deadline)'}")
    print("wrote", ", ".join(str(v) for v in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
