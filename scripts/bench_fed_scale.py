"""Wall time of federated rounds on a large Walker shell, in-process and on Flower's engine.

The federated config's scenario with its shell replaced by ``--shell`` (default 72x22, the
Starlink shell-1 geometry: 1,584 satellites) over ``--hours`` of plan; the same partition, cached
features and rounds run on the in-process engine (the baseline) and on Flower's Simulation
Engine (Ray backend; one virtual SuperNode per orbital plane by default, ``--flower-nodes
satellite`` for one per satellite). Prints the wall time per round of
each, their ratio measured in the same run, the simulated round times (the same for both: the
simulator books them) and how far Flower's head is from the in-process head.

    python scripts/bench_fed_scale.py --rounds 2                 # 72x22, full EuroSAT config
    python scripts/bench_fed_scale.py --shell 12x11 --rounds 2 --config experiments/fed/quick.yaml
    python scripts/bench_fed_scale.py --out results/fed_scale/bench_fed_scale.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

from research.fed.config import load_config
from research.fed.scenarios import parse_shells, walker_scenario


def main(argv: list[str] | None = None) -> int:
    from research.fed.flower import run_flower
    from research.fed.runner import build_plan, prepare, run

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/fed/collaborative.yaml")
    p.add_argument("--shell", default="72x22", help="PLANESxSATS Walker-delta shell")
    p.add_argument("--hours", type=float, default=24.0, help="length of the contact plan")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--topology", default="ring", choices=["ring", "star"])
    p.add_argument("--engines", nargs="*", default=["in-process", "flower"],
                   choices=["in-process", "flower"])
    p.add_argument("--flower-nodes", default="plane", choices=["satellite", "plane"],
                   help="one Flower SuperNode per orbital plane (default; Flower's in-memory "
                        "link state is quadratic in SuperNodes) or per satellite")
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args(argv)
    (planes, per), = parse_shells([args.shell])
    base = load_config(args.config)
    base = base.replace(scenario=walker_scenario(base, planes, per, args.hours * 3600.0),
                        **{"train.rounds": args.rounds, "topology": args.topology})
    t0 = time.perf_counter()
    plan = build_plan(base.scenario)
    plan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    setup = prepare(base, plan=plan, cache_dir="outputs/fed/cache")
    prepare_s = time.perf_counter() - t0
    satellites = sum(c.n > 0 for c in setup.clients)
    print(f"{args.shell}: {len(setup.clients)} satellites ({satellites} with data), plan "
          f"{plan_s:.0f} s, features and clients {prepare_s:.0f} s", flush=True)
    rows, heads = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines:
            cfg = base.replace(out_dir=str(Path(tmp) / engine))
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = (run(cfg, setup=setup, resume=False) if engine == "in-process" else
                       run_flower(cfg, setup=setup, resume=False, nodes=args.flower_nodes))
            wall = time.perf_counter() - t0
            if not res.rows:
                raise SystemExit(f"{engine}: no round finished within the {args.hours:g}-h plan "
                                 "(give more --hours)")
            heads[engine] = res.head
            rows.append({"engine": engine, "rounds": len(res.rows), "wall_s": wall,
                         "wall_s_per_round": wall / max(len(res.rows), 1),
                         "sim_round_s": [r["duration_s"] for r in res.rows],
                         "participants": [r["participants"] for r in res.rows],
                         "accuracy": res.rows[-1]["accuracy"] if res.rows else None})
            print(f"  {engine:<11} {rows[-1]['rounds']} rounds, {wall:.0f} s "
                  f"({rows[-1]['wall_s_per_round']:.1f} s/round), simulated "
                  f"{[round(x) for x in rows[-1]['sim_round_s']]} s, acc "
                  f"{rows[-1]['accuracy']}", flush=True)
    baseline = rows[0]["wall_s_per_round"]
    for r in rows:
        r["ratio"] = r["wall_s_per_round"] / baseline
    diff = None
    if len(heads) == 2:
        diff = max(float((heads["flower"][k] - heads["in-process"][k]).abs().max())
                   for k in heads["in-process"])
        print(f"  Flower {rows[1]['ratio']:.2f}x the in-process wall time per round; heads "
              f"differ by at most {diff:.2e}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "command": "python scripts/bench_fed_scale.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "config": args.config, "shell": args.shell, "satellites": len(setup.clients),
            "satellites_with_data": satellites, "plan_hours": args.hours,
            "plan_build_s": plan_s, "prepare_s": prepare_s, "topology": args.topology,
            "flower_nodes": args.flower_nodes,
            "rows": rows, "flower_vs_in_process_head_max_abs_diff": diff}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
