"""Per-capture policies over on-board compute: where an option that computes on board pays.

An option that runs a model on board (a learned split-0 encoder, a deeper cut, the whole model)
trades on-board seconds for downlink bytes, so whether it beats sending the image depends on the
satellite's FLOP/s more than on anything else. This sweep holds the scenario, its load and its
options fixed and scales the satellite's throughput (:func:`devices.what_if`: the base profile's
FLOP/s times a factor, power and memory kept, so which options fit on board does not change; a
modelled what-if, not a device), and at each
factor runs every option fixed, the greedy controller at each floor, and the isolation bound.

Rows are :func:`research.eval.policy_sweep.rows_at_load`'s with ``compute_factor``,
``satellite_device`` and ``satellite_flops`` (sustained FLOP/s). :func:`compute_comparisons`
gives per (factor, floor) the best fixed option meeting the floor, the greedy's p95 and the
bound; :func:`plot_compute` draws p95 against on-board FLOP/s, one panel per floor.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from devices import get_device, what_if
from research.eval.load import check_loads
from research.eval.policy_sweep import prepare_bench, rows_at_load, sweep_meta
from research.eval.scenario import EvalScenario, ScenarioError
from research.figures import log_scale, save_figure
from research.records import write_rows

__all__ = ["compute_comparisons", "compute_sweep", "plot_compute", "write_compute_sweep"]

MARKED_DEVICES = ("jetson_nano", "jetson_orin_nx")
"""Registered on-board profiles drawn as vertical lines for reference."""


def compute_sweep(scenario: EvalScenario, load: float, floors: Sequence[float],
                  factors: Sequence[float], *, floor_mode: str = "mean",
                  relay_hops: int | str = "auto", progress: bool = True
                  ) -> tuple[list[dict], dict]:
    """Rows (module docstring) and metadata with :func:`compute_comparisons`; the factors scale
    the scenario's satellite profile."""
    check_loads([load])
    if not factors or any(isinstance(f, bool) or not (isinstance(f, numbers.Real)
                                                      and math.isfinite(f) and f > 0)
                          for f in factors):
        raise ScenarioError(f"compute factors must be finite numbers > 0, got {list(factors)}")
    bench = prepare_bench(scenario, floors, progress=progress)
    specs: list[tuple[float | None, dict]] = [(None, {"kind": "fixed", "option": n})
                                             for n in bench.names]
    specs += [(floor, {"kind": "greedy", "floor": floor, "objective": "latency",
                       "floor_mode": floor_mode, "relay_hops": relay_hops}) for floor in floors]
    rows: list[dict] = []
    for factor in tqdm(sorted(factors), desc="on-board compute", disable=not progress):
        device = get_device(what_if(scenario.satellite_profile, factor))
        here = dataclasses.replace(scenario, satellite_profile=device)
        for row in rows_at_load(bench, here, load, floors, specs, floor_mode=floor_mode,
                                progress=progress):
            rows.append({"compute_factor": float(factor), "satellite_device": device.name,
                         "satellite_flops": device.effective_flops, **row})
    meta = sweep_meta(scenario, bench, floors, floor_mode, relay_hops)
    meta.update(load=float(load), factors=sorted(map(float, factors)),
                marked_devices={n: get_device(n).effective_flops for n in MARKED_DEVICES})
    meta["comparisons"] = compute_comparisons(rows)
    return rows, meta


def compute_comparisons(rows: list[dict]) -> list[dict]:
    """Per (factor, floor): the best fixed option meeting the floor by p95 (all scenes), the
    greedy's p95 and option mix, and the isolation bound."""
    out = []
    factors = sorted({r["compute_factor"] for r in rows})
    floors = sorted({r["floor"] for r in rows if r["floor"] is not None})
    for factor in factors:
        here = [r for r in rows if r["compute_factor"] == factor]
        for floor in floors:
            fixed = [r for r in here if r["kind"] == "fixed" and r["expected_accuracy"] >= floor]
            greedy = [r for r in here if r["kind"] == "greedy" and r["floor"] == floor]
            if not fixed or not greedy:
                continue
            best = min(fixed, key=lambda r: (r["latency_p95_all_s"], r["energy_onboard_j"]))
            g = greedy[0]
            out.append({"compute_factor": factor, "satellite_flops": g["satellite_flops"],
                        "floor": floor, "best_fixed": best["policy"],
                        "best_fixed_p95_s": best["latency_p95_all_s"],
                        "greedy_p95_s": g["latency_p95_all_s"],
                        "greedy_p50_s": g["latency_p50_all_s"],
                        "greedy_options": json.loads(g["options"]),
                        "isolation_bound_p95_s": g["isolation_bound_p95_s"]})
    return out


def write_compute_sweep(rows: list[dict], meta: dict, out: str | Path) -> dict[str, Path]:
    """``policy_compute.{csv,json,png,pdf}`` under ``out``."""
    paths = write_rows(rows, out, "policy_compute", meta=meta)
    for p in plot_compute(rows, meta, out):
        paths[p.suffix[1:]] = p
    return paths


def _seconds(x: float) -> float:  # an infinite p95 (more than 5% lost) leaves a gap
    return x if math.isfinite(x) else math.nan


def plot_compute(rows: list[dict], meta: dict, out: str | Path) -> list[Path]:
    """p95 latency against on-board FLOP/s, one panel per floor: every option fixed (dotted and
    faint where its expected accuracy is below the floor), the greedy controller, the bound."""
    floors, expected = meta["floors"], meta["expected_accuracy"]
    fig, axes = plt.subplots(1, len(floors), figsize=(6.4 * len(floors), 5.0), squeeze=False)
    shades = plt.cm.viridis(np.linspace(0.0, 0.85, len(expected)))  # no red or black

    def series(select) -> tuple[list[float], list[dict]]:
        pts = sorted((r for r in rows if select(r)), key=lambda r: r["satellite_flops"])
        return [r["satellite_flops"] / 1e9 for r in pts], pts

    for ax, floor in zip(axes[0], floors, strict=True):
        for (name, acc), shade in zip(expected.items(), shades, strict=True):
            meets = acc >= floor
            x, pts = series(lambda r, n=name: r["kind"] == "fixed" and r["policy"] == n)
            ax.plot(x, [_seconds(r["latency_p95_all_s"]) for r in pts], color=shade, marker=".",
                    lw=1.4 if meets else 0.8, ls="-" if meets else ":",
                    alpha=0.95 if meets else 0.35, label=f"fixed {name} ({100 * acc:.1f}%)")
        x, pts = series(lambda r, f=floor: r["kind"] == "greedy" and r["floor"] == f)
        ax.plot(x, [_seconds(r["latency_p95_all_s"]) for r in pts], color="tab:red", lw=2.2,
                marker="o", label="greedy controller (latency)")
        ax.plot(x, [_seconds(r["isolation_bound_p95_s"]) for r in pts], color="black",
                marker="^", ls=":", label="isolation bound on p95 (none is faster)")
        for name, flops in meta["marked_devices"].items():
            ax.axvline(flops / 1e9, color="grey", ls="--", lw=0.8)
            ax.annotate(name, (flops / 1e9, 1.0), xycoords=("data", "axes fraction"),
                        fontsize=7, color="grey", rotation=90, va="top", ha="right")
        ax.set_xscale("log")
        log_scale(ax, "y")
        ax.set_xlabel(f"on-board sustained GFLOP/s ({meta['satellite_profile']['name']} "
                      "throughput scaled: a what-if)")
        ax.set_ylabel("p95 latency over all scenes (s; gaps: >5% lost)")
        ax.set_title(f"expected-accuracy floor {floor:g} (dotted: options below it)", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=5, frameon=False)
    sensor = meta["sensor"]
    fig.suptitle(f"{meta['scenario']}: p95 latency against on-board compute at {meta['load']:g} "
                 f"{sensor['name']} scenes per satellite per orbit ({sensor['tiles_per_scene']:,} "
                 "tiles a scene)", fontsize=10)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return save_figure(fig, out, "policy_compute")
