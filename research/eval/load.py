"""The ledger under load: every scheme over a sweep of captures per orbit, on a shared network.

Each scheme runs once on the real test images (its payloads, predictions and FLOPs do not depend
on the load); then, for every load, the scenario's sensor captures ``per_orbit`` scenes per
satellite per orbit (until one orbit before the horizon, so that every scene has an orbit to
leave) and each scheme's scenes go through a fresh
:class:`~research.orbit.network.NetworkState` (the same captures for every scheme). A row per
(load, scheme) records delivery, p50/p95 latency, the on-board backlog and energy; the **knee**
of a scheme is the lowest load at which it stops delivering everything within one orbital
period at p95.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from research.eval.evaluate import (
    Capture,
    captures_for,
    run_schemes,
    simulate_scheme,
    test_images,
)
from research.eval.ledger import summarise
from research.eval.scenario import EvalScenario, ScenarioError
from research.figures import load_axes, save_figure
from research.orbit.contact_plan import ContactPlan
from research.orbit.network import NetworkResources, NetworkState
from research.records import write_rows
from research.workload import get_sensor, orbital_period_s

__all__ = ["captures_at_load", "check_loads", "knees", "load_sweep", "plot_load"]


def check_loads(loads: Sequence[float]) -> None:
    """Raise a :class:`ScenarioError` unless ``loads`` are captures per orbit > 0."""
    if not loads or any(not (isinstance(x, (int, float)) and x > 0) for x in loads):
        raise ScenarioError(f"loads must be captures per orbit > 0, got {list(loads)}")


def captures_at_load(scenario: EvalScenario, plan: ContactPlan, load: float, num_images: int,
                     period_s: float) -> list[Capture]:
    """The scenario's sensor at ``load`` captures per satellite per orbit, until one orbit before
    the horizon (so that every scene has an orbit to leave)."""
    scen = replace(scenario, captures=replace(scenario.captures, per_orbit=float(load)))
    return captures_for(scen, plan, num_images, period_s=period_s,
                        end_s=plan.horizon_s - period_s)


def load_sweep(scenario: EvalScenario, loads: Sequence[float], *,
               plan: ContactPlan | None = None, network: NetworkResources | None = None,
               progress: bool = True) -> tuple[list[dict], dict]:
    """Rows ``{per_orbit, scheme, ...summary, ...network use}`` and the run's metadata."""
    check_loads(loads)
    plan = plan or scenario.orbit.build()
    network = network or scenario.network
    period = orbital_period_s(scenario.orbit.constellation.satrecs)
    images, labels = test_images(scenario)
    outputs, skipped = run_schemes(scenario, images, progress)
    position = {i: i for i in range(len(images))}
    labels_np = labels.numpy()
    rows: list[dict] = []
    for load in tqdm(list(loads), desc="loads", disable=not progress):
        captures = captures_at_load(scenario, plan, load, len(images), period)
        for name, out in outputs.items():
            net = NetworkState(plan, network)
            ledger = simulate_scheme(name, out, captures, labels_np, position, plan, net,
                                     scenario)
            (entry,) = summarise(ledger)
            use = net.summary()
            rows.append({"per_orbit": float(load), **entry,
                         "offered_bytes": use["offered_bytes"],
                         "delivered_bytes": use["delivered_bytes"],
                         "undelivered_bytes": use["undelivered_bytes"],
                         "backlog_peak_bytes_max": use["storage_peak_bytes_max"],
                         "backlog_peak_bytes_mean": use["storage_peak_bytes_mean"]})
    sensor = get_sensor(scenario.captures.sensor)
    meta = {"scenario": scenario.name, "orbital_period_s": period, "horizon_s": plan.horizon_s,
            "sensor": sensor.to_dict(),
            "realistic_per_orbit": sensor.scenes_per_orbit(period),
            "network": network.to_dict(), "plan": plan.summary(),
            "satellite_profile": scenario.satellite_profile.to_dict(),
            "ground_profile": scenario.ground_profile.to_dict(), "skipped": skipped,
            "loads": list(map(float, loads))}
    meta["knees"] = knees(rows, period)
    return rows, meta


def knees(rows: list[dict], period_s: float, delivered: float = 0.999) -> dict[str, float | None]:
    """Per scheme, the lowest swept load at which it no longer delivers ``delivered`` of its
    scenes with p95 latency within one orbital period (``None``: never within the sweep)."""
    out: dict[str, float | None] = {}
    for r in sorted(rows, key=lambda r: r["per_orbit"]):
        name = r["scheme"]
        out.setdefault(name, None)
        ok = r["delivered_fraction"] >= delivered and r["latency_p95_s"] <= period_s
        if out[name] is None and not ok:
            out[name] = r["per_orbit"]
    return out


def write_sweep(rows: list[dict], meta: dict, out: str | Path) -> dict[str, Path]:
    """``load_sweep.{csv,json}`` and the figure under ``out``."""
    paths = write_rows(rows, out, "load_sweep", meta=meta)
    for p in plot_load(rows, meta, out):
        paths[p.suffix[1:]] = p
    return paths


def plot_load(rows: list[dict], meta: dict, out: str | Path) -> list[Path]:
    """p95 latency and delivered fraction against captures per orbit, one line per scheme."""
    fig, (ax_lat, ax_del) = plt.subplots(1, 2, figsize=(12, 4.2))
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    period = meta["orbital_period_s"]
    for name in schemes:
        pts = sorted((r["per_orbit"], r["latency_p95_s"], r["delivered_fraction"])
                     for r in rows if r["scheme"] == name)
        x = [p[0] for p in pts]
        lat = [p[1] / 60 if math.isfinite(p[1]) else float("nan") for p in pts]
        knee = meta.get("knees", {}).get(name)
        label = f"{name} (knee {knee:g})" if knee is not None else f"{name} (no knee)"
        (line,) = ax_lat.plot(x, lat, marker="o", ms=4, label=label)
        ax_del.plot(x, [100 * p[2] for p in pts], marker="o", ms=4, color=line.get_color())
    ax_lat.axhline(period / 60, color="grey", ls="--", lw=0.8)
    ax_lat.annotate("one orbit", (0.01, period / 60), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8, color="grey")
    real = meta.get("realistic_per_orbit")
    load_axes((ax_lat, ax_del), sorted({r["per_orbit"] for r in rows}),
              "captures per satellite per orbit (offered load)")
    for ax in (ax_lat, ax_del):
        if real:
            ax.axvline(real, color="black", ls=":", lw=0.8)
    ax_lat.set_yscale("log")
    ax_lat.set_ylabel("p95 latency of delivered answers (min)")
    ax_del.set_ylabel("scenes delivered within the horizon (%)")
    ax_del.set_ylim(-3, 103)
    sensor = meta["sensor"]
    net = meta["network"]
    fig.suptitle(f"{meta['scenario']}: {sensor['name']} scenes ({sensor['tiles_per_scene']:,} "
                 f"tiles each), {net['capacity']} links, on board "
                 f"{meta['satellite_profile']['name']}, {meta['horizon_s'] / 3600:g} h; dotted: "
                 f"the sensor's duty cycle", fontsize=10)
    ax_del.legend(*ax_lat.get_legend_handles_labels(), fontsize=7, loc="lower left")
    return save_figure(fig, out, "load_sweep")
