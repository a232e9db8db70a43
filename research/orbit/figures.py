"""Orbit figures: ground tracks, a contact Gantt chart per ground station, an ISL snapshot.

:func:`orbit_figures` builds the scenario's contact plan and writes PNG + PDF for each figure
(:func:`research.figures.save_figure`) and the numbers drawn as CSV/JSON:
``orbit_ground_tracks.{csv,png,pdf}``, ``orbit_contacts.csv`` + ``orbit_contact_gantt.{png,pdf}``,
``orbit_isl_snapshot.{json,png,pdf}`` and ``orbit_figures_summary.json``. The world map is a plain
latitude/longitude grid (no basemap download). ``scripts/fig_orbit.py`` parses the arguments.
Torch-free, like the rest of :mod:`research.orbit`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PolyCollection

from research.figures import save_figure
from research.orbit import (
    TimeGrid,
    build_contact_plan,
    constellation_preset,
    default_stations,
    subsatellite_points,
)

__all__ = ["QUICK_SITES", "contact_gantt", "ground_tracks", "isl_snapshot", "orbit_figures"]

QUICK_SITES = ["Kiruna", "Matera", "Maspalomas", "Hartebeesthoek", "Santiago", "SouthPoint"]


def _world_axes(ax) -> None:
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xticks(range(-180, 181, 60))
    ax.set_yticks(range(-90, 91, 30))
    ax.grid(True, lw=0.4, alpha=0.5)
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.set_aspect("equal")


def _break_wrap(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert NaN where the track jumps across the antimeridian, so lines do not streak."""
    jump = np.flatnonzero(np.abs(np.diff(lon)) > 180) + 1
    return np.insert(lon, jump, np.nan), np.insert(lat, jump, np.nan)


def ground_tracks(plan, constellation, stations, out: Path, max_tracks: int) -> list[Path]:
    """Tracks of up to ``max_tracks`` satellites spread over the constellation, and the stations."""
    grid = plan.grid
    pick = np.linspace(0, len(constellation) - 1, min(max_tracks, len(constellation))).astype(int)
    sub = constellation.subset(pick)
    lat, lon = subsatellite_points(sub, grid)
    with open(out / "orbit_ground_tracks.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["satellite", "t_s", "lat_deg", "lon_deg"])
        for i, name in enumerate(sub.names):
            for k in range(0, grid.n_steps, max(1, int(60 // grid.step_s))):
                w.writerow([name, grid.times[k], f"{lat[i, k]:.4f}", f"{lon[i, k]:.4f}"])
    fig, ax = plt.subplots(figsize=(10, 5.2))
    _world_axes(ax)
    for i, name in enumerate(sub.names):
        x, y = _break_wrap(lon[i], lat[i])
        ax.plot(x, y, lw=0.8, label=name if i < 8 else None)
    ax.scatter([s.lon_deg if s.lon_deg <= 180 else s.lon_deg - 360 for s in stations],
               [s.lat_deg for s in stations], marker="^", c="k", s=30, zorder=3,
               label="ground stations")
    for s in stations:
        ax.annotate(s.name, (s.lon_deg, s.lat_deg), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_title(f"Ground tracks, {grid.duration_s / 3600:g} h from {grid.to_dict()['epoch']}")
    ax.legend(fontsize=6, loc="lower left", ncol=3)
    return save_figure(fig, out, "orbit_ground_tracks")


def contact_gantt(plan, out: Path) -> list[Path]:
    """Every station-satellite contact window of the plan, one row per station."""
    rows = []
    for st in plan.stations:
        for c in plan.contacts(st):
            rows.append((st, c.a, c.start_s, c.end_s))
    with open(out / "orbit_contacts.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["station", "satellite", "start_s", "end_s", "duration_s"])
        for st, sat, s, e in rows:
            w.writerow([st, sat, f"{s:.2f}", f"{e:.2f}", f"{e - s:.2f}"])
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(plan.stations) + 1.5))
    cmap = plt.get_cmap("tab20")
    row = {st: y for y, st in enumerate(plan.stations)}
    boxes, colours = [], []
    for st, sat, s, e in rows:  # one collection: thousands of contacts draw in a blink
        y, x0, x1 = row[st], s / 3600, e / 3600
        boxes.append([(x0, y - 0.4), (x1, y - 0.4), (x1, y + 0.4), (x0, y + 0.4)])
        plane = plan.plane_of(sat)
        colours.append(cmap(plane % 20 if plane >= 0 else 0))
    ax.add_collection(PolyCollection(boxes, facecolors=colours, alpha=0.45, linewidths=0))
    ax.set_ylim(-0.6, len(plan.stations) - 0.4)
    ax.set_yticks(range(len(plan.stations)))
    ax.set_yticklabels([s.removeprefix("gs-") for s in plan.stations], fontsize=7)
    ax.set_xlabel("hours from epoch")
    ax.set_xlim(0, plan.horizon_s / 3600)
    ax.set_title("Satellite contacts per ground station (colour: orbital plane; darker: several)")
    ax.grid(True, axis="x", lw=0.4, alpha=0.5)
    return save_figure(fig, out, "orbit_contact_gantt")


def isl_snapshot(plan, constellation, stations, out: Path, t: float) -> list[Path]:
    """The ISL and ground links up at time ``t`` on the map."""
    lat, lon = subsatellite_points(constellation, plan.grid, np.array([t]))
    pos = {n: (float(lon[i, 0]), float(lat[i, 0])) for i, n in enumerate(constellation.names)}
    for s in stations:
        pos[s.node_id] = (s.lon_deg if s.lon_deg <= 180 else s.lon_deg - 360, s.lat_deg)
    edges = []
    for a in plan.satellites:
        for b in plan.neighbours(a, t):
            if a < b or plan.is_station(b):
                edges.append({"a": a, "b": b, "range_km": plan.range_m(a, b, t) / 1e3,
                              "rate_bps": plan.rate_bps(a, b, t),
                              "kind": "ground" if plan.is_station(b) else "isl"})
    data = {"t_s": t, "nodes": [{"id": k, "lon_deg": v[0], "lat_deg": v[1]} for k, v in
                                pos.items()], "edges": edges}
    (out / "orbit_isl_snapshot.json").write_text(json.dumps(data, indent=1))
    fig, ax = plt.subplots(figsize=(10, 5.2))
    _world_axes(ax)
    for e in edges:
        (x0, y0), (x1, y1) = pos[e["a"]], pos[e["b"]]
        if abs(x1 - x0) > 180:
            continue  # wraps around the map edge
        ax.plot([x0, x1], [y0, y1], lw=0.5 if e["kind"] == "isl" else 1.0,
                c="tab:blue" if e["kind"] == "isl" else "tab:red", alpha=0.7)
    xs = np.array([pos[n] for n in plan.satellites])
    ax.scatter(xs[:, 0], xs[:, 1], s=4, c="k", zorder=3, label="satellites")
    gs = np.array([pos[s.node_id] for s in stations])
    ax.scatter(gs[:, 0], gs[:, 1], marker="^", s=30, c="tab:red", zorder=3, label="stations")
    ax.plot([], [], c="tab:blue", label="ISL")
    ax.plot([], [], c="tab:red", label="ground link")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"Links at t = {t:g} s ({len(edges)} links)")
    return save_figure(fig, out, "orbit_isl_snapshot")


def orbit_figures(out: str | Path, quick: bool = False) -> list[Path]:
    """Every orbit figure and its numbers in ``out``; returns the figure files written.

    Args:
        out: Output folder (created).
        quick: The 6x11 demo shell, 6 stations in its reach, 2 h (seconds); else the 72x22
            Starlink shell 1, 20 stations, 3 h.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if quick:  # the stations of experiments/orbit/demo_6x11.yaml (in reach of 53 deg)
        c, hours, tracks = constellation_preset("demo_6x11"), 2, 6
        stations = default_stations(names=QUICK_SITES)
    else:
        c, hours, tracks = constellation_preset("starlink_shell1"), 3, 12
        stations = default_stations(20)
    grid = TimeGrid("2024-07-16T12:00:00Z", hours * 3600, 10)
    plan = build_contact_plan(c, stations, grid, eclipse=False)
    written = ground_tracks(plan, c, stations, out, tracks)
    written += contact_gantt(plan, out)
    written += isl_snapshot(plan, c, stations, out, t=0.0)
    summary = {"scenario": "quick" if quick else "full", **plan.summary()}
    (out / "orbit_figures_summary.json").write_text(json.dumps(summary, indent=2))
    return written
