"""``satedge serve --config experiments/serving/<x>.yaml [--set K=V] [--out DIR]``: a whole serving run.

Builds the services from the checkpoint, evaluates every task on real EuroSAT images through the
in-process runtime, places replicas on the contact plan and simulates the multi-task workload
under microservices, monolithic on-board models and raw downlink; prints the comparison.
``--config`` may be repeated (files merged in order) and ``--set workload.rate_hz=0.1``
overrides one value (see :mod:`research.configfile`).

``--runtime ray`` instead deploys the first epoch's placement on Ray Serve on localhost and
sends ``--requests`` real requests (and/or for ``--duration-s``) from ``--clients`` concurrent
HTTP clients, optionally killing ``--kills`` replicas while they are inside a request; it prints
throughput, p50/p95 wall-clock latency and the answered / lost / duplicated counts, and writes
``ray_requests.{csv,json}`` and ``ray_summary.json`` (:mod:`research.serving.live`).
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
    p.add_argument("--runtime", choices=("inprocess", "ray"), default="inprocess",
                   help="inprocess (default): evaluate and simulate the schemes; ray: a bounded "
                        "live run on Ray Serve deployments on localhost")
    live = p.add_argument_group("--runtime ray (a bounded live run)")
    live.add_argument("--requests", type=int, default=None,
                      help="requests to send (default 200, unless --duration-s is given)")
    live.add_argument("--duration-s", type=float, default=None,
                      help="stop sending after this many seconds (requests in flight finish)")
    live.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    live.add_argument("--tiles", type=int, default=8, help="real 64x64 tiles per request")
    live.add_argument("--kills", type=int, default=0,
                      help="replica processes to kill (SIGKILL), each while a request is inside "
                           "it, one at a time (the service's other replicas up)")
    live.add_argument("--max-replicas", type=int, default=2,
                      help="replicas per service deployed (the placement's first nodes)")
    live.add_argument("--port", type=int, default=8000, help="HTTP port on 127.0.0.1")
    live.add_argument("--num-cpus", type=int, default=2, help="CPUs Ray may use")
    return p


def print_summary(summary: dict) -> None:
    """A rich table of the schemes, then the accuracy and the verdict lines."""
    from rich.console import Console
    from rich.table import Table

    cols = [("landcover_acc", "land cover"), ("p50_latency_s", "p50 s"),
            ("p95_latency_s", "p95 s"), ("missed", "missed"),
            ("delivered_tiles", "tiles in time"),
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
    for scheme, s in summary["schemes"].items():
        if "option_mix" in s:  # a per-request policy: what it chose
            mix = ", ".join(f"{o} {100 * f:.1f}%" for o, f in s["option_mix"].items())
            console.print(f"{scheme} chose: {mix}")
    for name, row in summary["accuracy"]["modalities"].items():
        flag = "" if row["measured"] else " (SYNTHETIC: untrained embedder, not a result)"
        scores = {how: round(row[how]["landcover_acc"], 4) for how in row
                  if isinstance(row[how], dict)}
        console.print(f"{name}{flag}: land-cover accuracy {scores}")
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
    out = args.out or DEFAULT_OUT / cfg.name
    if args.runtime == "ray":
        from research.serving.live import print_live_summary, run_ray_serving

        try:
            import ray.serve  # noqa: F401
        except ImportError:
            print("satedge serve: --runtime ray needs Ray Serve (pip install -e '.[serve]')",
                  file=sys.stderr)
            return 2
        bad = [f"--{k.replace('_', '-')}" for k in ("requests", "duration_s", "clients", "tiles",
                                                      "max_replicas", "num_cpus")
               if getattr(args, k) is not None and getattr(args, k) <= 0]
        if bad or args.kills < 0:
            print(f"satedge serve: {', '.join(bad) or '--kills'} must be positive",
                  file=sys.stderr)
            return 2
        requests = args.requests if args.requests or args.duration_s else 200
        summary = run_ray_serving(cfg, out, requests=requests, duration_s=args.duration_s,
                                  clients=args.clients, tiles=args.tiles, kills=args.kills,
                                  max_replicas=args.max_replicas, port=args.port,
                                  num_cpus=args.num_cpus)
        print_live_summary(summary, out)
        return 0 if summary["exactly_once"] else 1
    from research.opt import UnreachableFloorError

    try:
        summary = run_serving(cfg, out)
    except UnreachableFloorError as err:  # a policy floor above every scheme's measured accuracy
        print(f"satedge serve: {err}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
