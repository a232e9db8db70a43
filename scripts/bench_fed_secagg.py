"""Wall time per round of secure aggregation, in-process and on Flower, against plain FedAvg.

The same config (one plan, partition and cached features) runs four ways for ``--rounds``
rounds: in-process plain FedAvg (the baseline), in-process SecAgg (:mod:`research.fed.secagg`),
Flower plain and Flower SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``). Prints seconds per
round and the ratio to the baseline measured in the same run, and how far Flower's secure head
is from the in-process secure head (Flower quantizes to 2**22 levels). Simulated times and bytes
are the same for every engine (the simulator books them), so only wall time is compared.

    python scripts/bench_fed_secagg.py                         # quick config, 2 rounds
    python scripts/bench_fed_secagg.py --out results/fed_secagg/bench_fed_secagg.json
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


def main(argv: list[str] | None = None) -> int:
    from research.fed.flower import run_flower
    from research.fed.runner import prepare, run

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/fed/quick.yaml")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--topology", default="ring", choices=["ring", "star"])
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args(argv)
    base = load_config(args.config).replace(**{"train.rounds": args.rounds,
                                              "topology": args.topology})
    setup = prepare(base)
    rows, heads = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ("in-process", "flower"):
            for secure in (False, True):
                name = f"{engine}{' secagg' if secure else ''}"
                cfg = base.replace(**{"out_dir": str(Path(tmp) / name.replace(" ", "_")),
                                      "secagg.enabled": secure})
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = (run if engine == "in-process" else run_flower)(cfg, setup=setup,
                                                                           resume=False)
                wall = time.perf_counter() - t0
                heads[name] = res.head
                rows.append({"run": name, "rounds": len(res.rows), "wall_s": wall,
                             "wall_s_per_round": wall / len(res.rows),
                             "accuracy": res.rows[-1]["accuracy"]})
    baseline = rows[0]["wall_s_per_round"]
    for r in rows:
        r["ratio"] = r["wall_s_per_round"] / baseline
    diff = max(float((heads["flower secagg"][k] - heads["in-process secagg"][k]).abs().max())
               for k in heads["in-process secagg"])
    satellites = sum(c.n > 0 for c in setup.clients)
    print(f"{args.config}, {args.topology}, {satellites} satellites, {args.rounds} rounds")
    for r in rows:
        print(f"  {r['run']:<20} {r['wall_s_per_round']:8.2f} s/round  {r['ratio']:6.2f}x  "
              f"acc {100 * r['accuracy']:.2f}%")
    print(f"  Flower SecAgg+ head vs in-process SecAgg head: max |diff| {diff:.2e}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"command": "python scripts/bench_fed_secagg.py " + " ".join(
            sys.argv[1:] if argv is None else argv), "config": args.config,
            "topology": args.topology, "satellites": satellites, "rows": rows,
            "flower_vs_in_process_head_max_abs_diff": diff}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
