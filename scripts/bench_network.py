"""Benchmark: contention-aware scheduling against unlimited-capacity routing, same transfers.

A day of captures at realistic volumes (a :mod:`research.workload` sensor preset at its duty
cycle, every tile sent raw as RGB uint8: the heaviest scheme, the one that saturates) is issued
in time order to two :class:`~research.orbit.network.NetworkState` objects over the same plan:
``exclusive`` (bookings, residual-capacity routes) and ``unlimited`` (the earlier model). Prints
transfers scheduled per second for each, the ratio of per-transfer times (target: at most 3x),
peak memory, and the delivered fraction. Each mode runs in its own process (own peak RSS).

    python scripts/bench_network.py                       # demo shell, a day of Sentinel-2 (target: <= 5 min)
    python scripts/bench_network.py --orbit experiments/orbit/starlink_72x22.yaml --limit 2000
    python scripts/bench_network.py --quick               # 2 h, a few hundred transfers (smoke test)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _workload(args):
    from research.orbit import load_config
    from research.orbit.timegrid import TimeGrid
    from research.workload import get_sensor, orbital_period_s, schedule_captures

    cfg = load_config(args.orbit)
    if args.hours:
        cfg.grid = TimeGrid(cfg.grid.epoch, args.hours * 3600, cfg.grid.step_s)
    t = time.perf_counter()
    plan = cfg.build()
    build_s = time.perf_counter() - t
    sensor = get_sensor(args.sensor)
    period = orbital_period_s(cfg.constellation.satrecs)
    per_orbit = args.per_orbit or sensor.scenes_per_orbit(period)
    caps = schedule_captures(sensor, plan.satellites, plan.horizon_s, 1, period_s=period,
                             per_orbit=per_orbit, start_s=0.0, seed=0, sample_tiles=1)
    if args.limit:
        caps = caps[: args.limit]
    return plan, caps, sensor, per_orbit, build_s


def _job(mode: str, args, q) -> None:
    from research.orbit import NetworkResources, NetworkState

    plan, caps, sensor, per_orbit, build_s = _workload(args)
    net = NetworkState(plan, NetworkResources(capacity=mode))
    nbytes = args.bytes_per_tile * sensor.tiles_per_scene
    t = time.perf_counter()
    for c in caps:
        net.send(c.satellite, plan.stations, nbytes, c.t_s)
    dt = time.perf_counter() - t
    s = net.summary()
    q.put({"mode": mode, "transfers": len(caps), "seconds": dt,
           "transfers_per_s": len(caps) / dt, "ms_per_transfer": 1e3 * dt / len(caps),
           "delivered_fraction": s["delivered_bytes"] / max(s["offered_bytes"], 1.0),
           "peak_mb": _peak_mb(), "plan_build_s": build_s, "per_orbit": per_orbit,
           "satellites": len(plan.satellites), "stations": len(plan.stations),
           "horizon_h": plan.horizon_s / 3600, "scene_bytes": nbytes})


def _run(mode: str, args) -> dict:
    q = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=_job, args=(mode, args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orbit", default="experiments/orbit/demo_6x11.yaml")
    p.add_argument("--hours", type=float, default=24.0, help="horizon (replaces the YAML's)")
    p.add_argument("--sensor", default="sentinel2_msi")
    p.add_argument("--per-orbit", type=float, default=None,
                   help="captures per satellite per orbit (default: the sensor's duty cycle)")
    p.add_argument("--bytes-per-tile", type=float, default=3 * 64 * 64, help="raw RGB uint8")
    p.add_argument("--limit", type=int, default=None, help="only the first N transfers")
    p.add_argument("--quick", action="store_true", help="2 h and at most 300 transfers")
    p.add_argument("--out", default=None, help="write the result JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.hours, args.limit = 2.0, args.limit or 300
    results = {mode: _run(mode, args) for mode in ("unlimited", "exclusive")}
    ex, un = results["exclusive"], results["unlimited"]
    ratio = ex["ms_per_transfer"] / un["ms_per_transfer"]
    for r in (un, ex):
        print(f"{r['mode']:>9}: {r['transfers']:,} transfers in {r['seconds']:.1f} s "
              f"({r['transfers_per_s']:.0f}/s, {r['ms_per_transfer']:.2f} ms each), delivered "
              f"{100 * r['delivered_fraction']:.1f}% of bytes, peak {r['peak_mb']:.0f} MB")
    print(f"{ex['satellites']} satellites, {ex['stations']} stations, {ex['horizon_h']:g} h, "
          f"{ex['per_orbit']:.1f} captures/satellite/orbit of {ex['scene_bytes'] / 1e9:.2f} GB")
    print(f"contention-aware / unlimited time per transfer: {ratio:.2f}x (target <= 3x)")
    print(f"exclusive scheduling of the whole workload: {ex['seconds'] / 60:.1f} min")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"command": "python " + " ".join(sys.argv),
                                              "ratio": ratio, **results}, indent=1))


if __name__ == "__main__":
    main()
