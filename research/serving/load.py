"""Serving under offered load: every scheme over captures per orbit and tasks per capture.

The services, their measured accuracy and image sizes and the contact plan are built once
(:func:`research.serving.experiment.prepare_serving`); then for each load (captures per source
per orbit: ``rate_hz = per_orbit / period``) and each task set, the same requests go through
every scheme on fresh network states (:func:`research.serving.experiment.compare_setup`,
placement re-solved for the load). A row per (load, tasks, scheme) records p50/p95 latency,
deadline misses and the tiles delivered within the deadline. The **break load** of a scheme is
the lowest swept load at which it misses a deadline for more than ``1 - delivered`` of its
requests (``None``: it held over the whole sweep).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from research.figures import load_axes, save_figure
from research.records import write_rows
from research.serving.config import ServeConfig
from research.serving.experiment import compare_setup, prepare_serving
from research.serving.figure import COLOURS
from research.workload import orbital_period_s

__all__ = ["break_loads", "checked_task_sets", "plot_serving_load", "serving_load_sweep",
           "write_serving_load", "write_sweep"]

KEYS = ("landcover_acc", "p50_latency_s", "p95_latency_s", "missed", "requests", "tiles",
        "delivered_tiles", "delivered_fraction", "onboard_memory_bytes", "bytes_downlink",
        "energy_onboard_compute_j", "energy_onboard_transmit_j")


def serving_load_sweep(cfg: ServeConfig, loads: Sequence[float],
                       task_sets: Sequence[Sequence[str]] | None = None, *,
                       progress: bool = True) -> tuple[list[dict], dict]:
    """Rows ``{per_orbit, tasks, n_tasks, scheme, ...}`` and the sweep's metadata."""
    if not loads or any(not (isinstance(x, (int, float)) and x > 0) for x in loads):
        raise ValueError(f"loads must be captures per source per orbit > 0, got {list(loads)}")
    task_sets = checked_task_sets(cfg, task_sets)
    setup = prepare_serving(cfg)
    period = orbital_period_s(cfg.orbit_config().constellation.satrecs)
    rows: list[dict] = []
    grid = [(load, tuple(ts)) for ts in task_sets for load in loads]
    for load, tasks in tqdm(grid, desc="loads", disable=not progress):
        demands = [replace(d, rate_hz=load / period, tasks=tasks) for d in setup.demands]
        cmp = compare_setup(cfg, setup, demands)
        for scheme, s in cmp.summaries.items():
            rows.append({"per_orbit": float(load), "tasks": "+".join(tasks),
                         "n_tasks": len(tasks), "scheme": scheme,
                         **{k: s[k] for k in KEYS}})
    w = cfg.workload
    meta = {"name": cfg.name, "orbital_period_s": period, "deadline_s": w.deadline_s,
            "horizon_s": min(w.horizon_s, setup.plan.horizon_s), "sources": len(setup.demands),
            "tiles_per_capture": w.tiles, "modalities": w.modalities,
            "satellite_profile": cfg.nodes.satellite_profile, "network": cfg.network.to_dict(),
            "placement": cfg.placement.method, "accuracy": setup.accuracy,
            "loads": list(map(float, loads)), "task_sets": task_sets}
    meta["break_loads"] = break_loads(rows)
    return rows, meta


def checked_task_sets(cfg: ServeConfig, task_sets: Sequence[Sequence[str]] | None
                      ) -> list[list[str]]:
    """The task sets of a sweep (default: the workload's tasks), each naming only workload
    tasks (a clear error otherwise)."""
    task_sets = [list(t) for t in (task_sets or [cfg.workload.tasks])]
    unknown = sorted({t for ts in task_sets for t in ts} - set(cfg.workload.tasks))
    if unknown:
        raise ValueError(f"task sets name {unknown}; expected tasks of the workload "
                         f"{cfg.workload.tasks}")
    return task_sets


def write_sweep(rows: list[dict], meta: dict, out: str | Path, stem: str,
                plot: Callable[[list[dict], dict, str | Path], list[Path]]) -> dict[str, Path]:
    """``<stem>.{csv,json}`` and the figure ``plot`` draws, under ``out``."""
    paths = write_rows(rows, out, stem, meta=meta)
    for p in plot(rows, meta, out):
        paths[p.suffix[1:]] = p
    return paths


def break_loads(rows: list[dict], delivered: float = 0.99) -> dict[str, float | None]:
    """Per ``scheme|tasks``: the lowest swept load at which fewer than ``delivered`` of the
    requests meet their deadline (``None``: never within the sweep)."""
    out: dict[str, float | None] = {}
    for r in sorted(rows, key=lambda r: r["per_orbit"]):
        key = f"{r['scheme']}|{r['tasks']}"
        out.setdefault(key, None)
        if out[key] is None and not r["delivered_fraction"] >= delivered:
            out[key] = r["per_orbit"]
    return out


def plot_serving_load(rows: list[dict], meta: dict, out: str | Path) -> list[Path]:
    """p95 latency and the share of requests answered in time against offered load; one colour
    per scheme, one line style per task set; the deadline drawn."""
    fig, (ax_lat, ax_del) = plt.subplots(1, 2, figsize=(12.5, 4.2))
    styles = ["-", "--", ":", "-."]
    task_sets = list(dict.fromkeys(r["tasks"] for r in rows))
    for name in dict.fromkeys(r["scheme"] for r in rows):
        for j, tasks in enumerate(task_sets):
            pts = sorted((r["per_orbit"], r["p95_latency_s"], r["delivered_fraction"])
                         for r in rows if r["scheme"] == name and r["tasks"] == tasks)
            x = [p[0] for p in pts]
            lat = [p[1] if math.isfinite(p[1]) else float("nan") for p in pts]
            brk = meta["break_loads"].get(f"{name}|{tasks}")
            label = f"{name}, {tasks} (breaks at {brk:g})" if brk is not None else \
                f"{name}, {tasks} (holds)"
            kw = {"color": COLOURS.get(name, "grey"), "ls": styles[j % len(styles)],
                  "marker": "o", "ms": 3.5}
            ax_lat.plot(x, lat, label=label, **kw)
            ax_del.plot(x, [100 * p[2] for p in pts], **kw)
    ax_lat.axhline(meta["deadline_s"], color="black", ls="--", lw=0.8)
    ax_lat.annotate("deadline", (0.01, meta["deadline_s"]), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8)
    load_axes((ax_lat, ax_del), sorted({r["per_orbit"] for r in rows}),
              "captures per source satellite per orbit (offered load)")
    ax_lat.set_yscale("log")
    ax_lat.set_ylabel("p95 latency, capture to answer on ground (s)")
    ax_del.set_ylabel("requests answered within the deadline (%)")
    ax_del.set_ylim(-3, 103)
    fig.suptitle(f"{meta['name']}: {meta['sources']} sources, {meta['tiles_per_capture']} tiles "
                 f"per capture ({'/'.join(meta['modalities'])}), deadline {meta['deadline_s']:g} s,"
                 f" on board {meta['satellite_profile']}, {meta['horizon_s'] / 3600:g} h",
                 fontsize=10)
    fig.tight_layout()
    handles, labels = ax_lat.get_legend_handles_labels()
    ax_lat.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(1.05, -0.14),
                  ncol=3, title="scheme, tasks per capture (break load: < 99% answered in time)",
                  title_fontsize=7)
    return save_figure(fig, out, "serving_load")


def write_serving_load(rows: list[dict], meta: dict, out: str | Path) -> dict[str, Path]:
    """``serving_load.{csv,json}`` and the figure under ``out``."""
    return write_sweep(rows, meta, out, "serving_load", plot_serving_load)
