"""Benchmark: contact-plan build time and peak memory against plain SGP4 propagation.

Scenario A (the target): 72x22 Starlink-shell-1-like Walker-delta, 20 ground stations, 24 h at
10 s steps, ground visibility + +Grid ISLs with ranges. In the same run, plain
``SatrecArray.sgp4`` over the same satellites and times, both as one call (the plain way) and in
the plan's time chunks. Targets: plan time <= 1.5 x plain propagation; peak memory <= 4 GB.
Scenario B: the full Starlink TLE file (~6,200 satellites) over 1 h with the same stations and
nearest-neighbour ISLs. Each measurement runs in its own process so its peak RSS is its own.

    python scripts/bench_orbit.py            # a few minutes on two busy cores
    python scripts/bench_orbit.py --quick    # small shell, 1 h: seconds (smoke test)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _constellation(spec: dict):
    from research.orbit import constellation_preset, from_tle_file

    if "preset" in spec:
        return constellation_preset(spec["preset"], epoch=spec["epoch"])
    return from_tle_file(spec["tle"])


def _job_plan(spec: dict, q) -> None:
    from research.orbit import IslConfig, TimeGrid, build_contact_plan, default_stations
    from research.orbit.builder import BuildStats

    c = _constellation(spec)
    grid = TimeGrid(spec["epoch"], spec["hours"] * 3600, spec["step_s"])
    stats = BuildStats()
    t0 = time.perf_counter()
    plan = build_contact_plan(c, default_stations(spec["stations"]), grid,
                              isl=IslConfig(topology=spec["isl"], max_range_km=5000.0),
                              eclipse=spec.get("eclipse", False), stats=stats)
    dt = time.perf_counter() - t0
    q.put({"plan_s": dt, "peak_rss_mb": _peak_mb(), "stages_s": stats.seconds,
           "summary": plan.summary(), "satellites": len(c)})


def _job_propagate(spec: dict, q) -> None:
    import numpy as np
    from sgp4.api import SatrecArray, accelerated

    from research.orbit import TimeGrid

    c = _constellation(spec)
    grid = TimeGrid(spec["epoch"], spec["hours"] * 3600, spec["step_s"])
    jd, fr = grid.jd_utc()
    arr = SatrecArray(c.satrecs)
    chunk = spec.get("chunk")
    t0 = time.perf_counter()
    if chunk:
        for k in range(0, len(jd), chunk):
            arr.sgp4(np.ascontiguousarray(jd[k:k + chunk]), np.ascontiguousarray(fr[k:k + chunk]))
    else:
        arr.sgp4(jd, fr)
    q.put({"propagate_s": time.perf_counter() - t0, "peak_rss_mb": _peak_mb(),
           "accelerated": bool(accelerated), "chunk_steps": chunk or len(jd)})


def _run(target, spec: dict) -> dict:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(spec, q))
    p.start()
    out = q.get()
    p.join()
    return out


def plan_chunk_steps(n_sat: int, n_st: int, n_steps: int, chunk_elements: int = 8_000_000) -> int:
    """The builder's time-chunk length (kept in step with ``build_contact_plan``)."""
    return int(min(max(chunk_elements // max(n_sat * max(n_st, 4), 1), 16), n_steps))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6x11 shell for 1 h (smoke test)")
    ap.add_argument("--skip-tle", action="store_true", help="skip the full-Starlink-TLE scenario")
    ap.add_argument("--out", type=Path, default=Path("outputs") / "bench" / "bench_orbit.json")
    args = ap.parse_args(argv)
    epoch = "2024-07-16T12:00:00Z"
    a = dict(preset="demo_6x11" if args.quick else "starlink_shell1", epoch=epoch,
             hours=1 if args.quick else 24, step_s=10.0, stations=20, isl="grid")
    results: dict = {"scenario_a": {"spec": a}}
    n_sat = 66 if args.quick else 1584
    n_steps = int(a["hours"] * 3600 / a["step_s"])
    ra = results["scenario_a"]
    ra["plan"] = _run(_job_plan, a)
    ra["propagate_one_call"] = _run(_job_propagate, a)
    ra["propagate_chunked"] = _run(_job_propagate,
                                   {**a, "chunk": plan_chunk_steps(n_sat, 20, n_steps)})
    plan_s = ra["plan"]["plan_s"]
    ra["ratio_vs_one_call"] = plan_s / ra["propagate_one_call"]["propagate_s"]
    ra["ratio_vs_chunked"] = plan_s / ra["propagate_chunked"]["propagate_s"]
    ra["targets_met"] = {"time_<=1.5x_plain": ra["ratio_vs_one_call"] <= 1.5,
                         "time_<=1.5x_chunked": ra["ratio_vs_chunked"] <= 1.5,
                         "peak_<=4GB": ra["plan"]["peak_rss_mb"] <= 4096}
    if not args.quick and not args.skip_tle:
        from research.paths import tle_dir

        f = tle_dir() / "starlink.txt"
        if f.is_file():
            b = dict(tle=str(f), epoch=epoch, hours=1, step_s=10.0, stations=20, isl="nearest")
            results["scenario_b"] = {"spec": b, "plan": _run(_job_plan, b),
                                     "propagate_one_call": _run(_job_propagate, b)}
        else:
            results["scenario_b"] = {"skipped": f"{f} not found"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    _report(results)
    print(f"written: {args.out}")
    return 0


def _report(r: dict) -> None:
    a = r["scenario_a"]
    p = a["plan"]
    print(f"A: {a['spec']['preset']} ({p['satellites']} sats), {a['spec']['stations']} stations, "
          f"{a['spec']['hours']} h @ {a['spec']['step_s']:g} s")
    print(f"   plan build         {p['plan_s']:8.2f} s   peak RSS {p['peak_rss_mb']:7.0f} MB")
    print("   stages             " + ", ".join(f"{k} {v:.2f}" for k, v in p["stages_s"].items()))
    for key in ("propagate_one_call", "propagate_chunked"):
        q = a[key]
        print(f"   {key:<18} {q['propagate_s']:8.2f} s   peak RSS {q['peak_rss_mb']:7.0f} MB "
              f"({q['chunk_steps']} steps/call, accelerated={q['accelerated']})")
    print(f"   ratio plan/one-call {a['ratio_vs_one_call']:.2f}, plan/chunked "
          f"{a['ratio_vs_chunked']:.2f}; targets {a['targets_met']}")
    s = p["summary"]
    print(f"   contacts {s['contacts']}, mean duration {s['mean_contact_duration_s']:.0f} s, "
          f"ISL links {s['isl_links']}")
    b = r.get("scenario_b")
    if b and "plan" in b:
        print(f"B: Starlink TLE file ({b['plan']['satellites']} sats), 20 stations, 1 h @ 10 s, "
              f"nearest ISLs: plan {b['plan']['plan_s']:.2f} s (peak "
              f"{b['plan']['peak_rss_mb']:.0f} MB), plain propagation "
              f"{b['propagate_one_call']['propagate_s']:.2f} s; stages "
              + ", ".join(f"{k} {v:.2f}" for k, v in b["plan"]["stages_s"].items()))
    elif b:
        print(f"B: {b}")


if __name__ == "__main__":
    raise SystemExit(main())
