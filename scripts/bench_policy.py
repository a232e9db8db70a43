"""Benchmark: the greedy controller's decision time per capture, against exact what-if routing.

The greedy policy (``research.opt.GreedyPolicy``) must decide in at most 1 ms per capture on one
core, so that it could run on board. Setting: the demo 6x11 shell with ISLs and its 6 stations
(6 h), Sentinel-2-like captures at the sensor's duty cycle (25.7 per satellite per orbit), ten
options (decision time depends on their number, not their values; the bank mirrors
``experiments/eval/policy_s2.yaml``). Baseline in the same run: what a ground controller with
the whole network state would ask instead, one ``NetworkState.route`` what-if query per option
(on an empty network, its cheapest case).

    python scripts/bench_policy.py            # about a minute
    python scripts/bench_policy.py --quick    # fewer captures (smoke test)

Prints the mean and p99 decision time and the ratio; ``--out`` writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# per tile: (name, expected accuracy, payload bytes, on-board FLOPs, ground FLOPs)
BANK = [("raw", 0.97, 12288, 0.0, 4.2e9), ("png", 0.97, 6531, 0.0, 4.2e9),
        ("jpeg95", 0.964, 2203, 0.0, 4.2e9), ("jpeg90", 0.9645, 1703, 0.0, 4.2e9),
        ("jpeg85", 0.9575, 1450, 0.0, 4.2e9), ("jpeg80", 0.947, 1330, 0.0, 4.2e9),
        ("jpeg75", 0.9285, 1245, 0.0, 4.2e9), ("split0-int8", 0.9695, 11509, 4.7e6, 4.2e9),
        ("codec-split5", 0.9565, 43, 2.5e9, 1.7e9), ("onboard", 0.97, 2, 4.2e9, 0.0)]


def main(argv: list[str] | None = None) -> None:
    from devices import get_device
    from research.opt import GreedyPolicy, Option, OptionBank, PolicyContext
    from research.orbit import NetworkState
    from research.orbit.config import load_config
    from research.workload import get_sensor, orbital_period_s, schedule_captures

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orbit", default="experiments/orbit/demo_6x11.yaml")
    p.add_argument("--per-orbit", type=float, default=25.7)
    p.add_argument("--baseline-captures", type=int, default=100,
                   help="captures timed with what-if routing (slow)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    cfg = load_config(args.orbit)
    plan = cfg.build()
    period = orbital_period_s(cfg.constellation.satrecs)
    sensor = get_sensor("sentinel2_msi")
    caps = schedule_captures(sensor, list(plan.satellites), plan.horizon_s, 1000,
                             period_s=period, per_orbit=args.per_orbit, start_s=60.0,
                             end_s=plan.horizon_s - period, seed=0)
    if args.quick:
        caps, args.baseline_captures = caps[:300], 20
    bank = OptionBank([Option(*row) for row in BANK])
    ctx = PolicyContext(bank=bank, plan=plan, satellite_profile=get_device("jetson_nano"),
                        ground_profile=get_device("a100"), period_s=period, relay=True)
    policy = GreedyPolicy(floor=0.95)
    t0 = time.perf_counter()
    policy.prepare(ctx)  # builds the outlook once (uploaded with the contact plan in practice)
    prepare_s = time.perf_counter() - t0
    times = []
    for cap in caps:
        t = time.perf_counter()
        policy.decide(cap, cap.t_s)
        times.append(time.perf_counter() - t)
    greedy = np.array(times)

    net = NetworkState(plan)
    compute = ctx.compute_s()
    base = []
    for cap in caps[: args.baseline_captures]:
        t = time.perf_counter()
        for o in range(len(bank)):
            ready = min(cap.t_s + compute[o] * cap.tiles, plan.horizon_s - 1.0)
            net.route(cap.satellite, plan.stations, bank.payload_bytes[o] * cap.tiles, ready)
        base.append(time.perf_counter() - t)
    route = np.array(base)
    result = {"captures": len(caps), "options": len(bank), "prepare_s": prepare_s,
              "greedy_mean_ms": 1e3 * greedy.mean(), "greedy_p99_ms": 1e3 * np.percentile(greedy, 99),
              "route_mean_ms": 1e3 * route.mean(), "route_captures": len(route),
              "speedup_vs_route": route.mean() / greedy.mean(), "target_ms": 1.0,
              "meets_target": bool(np.percentile(greedy, 99) <= 1e-3)}
    print(f"greedy decision: mean {result['greedy_mean_ms']:.3f} ms, p99 "
          f"{result['greedy_p99_ms']:.3f} ms over {len(caps)} captures x {len(bank)} options "
          f"(target <= 1 ms: {'met' if result['meets_target'] else 'MISSED'}); outlook built "
          f"once in {prepare_s:.2f} s")
    print(f"what-if routing baseline: {result['route_mean_ms']:.1f} ms per capture "
          f"({result['speedup_vs_route']:.0f}x the greedy decision)")
    if args.out:
        result["command"] = "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
