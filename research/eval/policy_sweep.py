"""Per-capture policies against every fixed scheme, over offered load and accuracy floor.

Each scheme runs once on the real test tiles (payloads, predictions, FLOPs) and on calibration
tiles (its expected accuracy, what a policy plans with). Then, for every load, the scenario's
sensor captures ``per_orbit`` scenes per satellite per orbit (until one orbit before the horizon,
as in :mod:`research.eval.load`) and, each on a fresh
:class:`~research.orbit.network.NetworkState`, answer them:

- every scheme as a ``fixed`` policy (the same bank of options the adaptive policies get);
- per accuracy floor, the ``greedy`` policy minimising latency and the one minimising on-board
  energy, and the ``oracle`` with each objective (its LP bound and the rounded schedule played
  in the simulator);
- per accuracy floor, the isolation bound on p50 and p95 latency (:mod:`research.opt.isolation`:
  every scene with the network to itself, exact at the simulator's resolution), and per fixed
  scheme its own p95 in isolation (what of its latency is contention). Every policy's ledger is
  checked against the per-scene isolated latencies (``isolation_violations``: scenes answered
  sooner than alone beyond a propagation step's slack, 0 unless the bound is wrong).

A row per (load, policy, floor) records realised accuracy, the expected accuracy of the options
chosen, delivery, p50/p95 latency (``latency_p95_all_s`` counts undelivered scenes as never
answered: infinite when more than 5% are lost), on-board energy per scene and the option mix.
:func:`comparisons` then names, per (load, floor), the best fixed scheme meeting the floor and how
the greedy policies and the bound compare with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from research.eval.evaluate import (
    calibration_images,
    isolation_latencies,
    run_policies,
    run_schemes,
    test_images,
)
from research.eval.ledger import LedgerRow, summarise
from research.eval.load import captures_at_load, check_loads
from research.eval.scenario import EvalScenario, ScenarioError
from research.figures import load_axes, log_scale, save_figure
from research.opt.isolation import PROPAGATION_SLACK_S, percentile_bound
from research.opt.outlook import DownlinkOutlook
from research.orbit.contact_plan import ContactPlan
from research.orbit.network import NetworkResources
from research.records import write_rows
from research.workload import get_sensor, orbital_period_s

__all__ = ["Bench", "comparisons", "plot_policies", "policy_rows", "policy_sweep", "prepare_bench",
           "rows_at_load", "sweep_meta", "write_policy_sweep"]


def _percentile_all(ledger: list[LedgerRow], q: float = 95.0) -> float:
    """A latency percentile over every scene, an undelivered one counted as never answered
    (numpy's ``higher`` method: a scene's own latency, as the isolation bound counts it)."""
    lat = np.array([r.latency_s if r.delivered else math.inf for r in ledger])
    return float(np.percentile(lat, q, method="higher")) if len(lat) else math.nan


def isolation_violations(ledger: list[LedgerRow], isolated: np.ndarray, names: Sequence[str],
                         tolerance_s: float = PROPAGATION_SLACK_S) -> int:
    """Scenes a ledger answers sooner than their chosen option could alone, by more than the
    propagation delay's step (``isolated`` in capture order, a column per option ``names``): any
    is a bug in the bound or the simulator."""
    column = {n: k for k, n in enumerate(names)}
    return sum(1 for c, r in enumerate(ledger) if r.delivered
               and r.latency_s < isolated[c, column[r.option]] - tolerance_s)


def policy_rows(load: float, floor: float | None, ledger: list[LedgerRow], info: dict,
                expected: dict[str, float], deadline_s: float) -> dict:
    """One sweep row from a policy's ledger and its :func:`run_policies` info."""
    (entry,) = summarise(ledger)
    mix = info["options"]
    n = sum(mix.values())
    row = {"per_orbit": float(load), "floor": floor, "policy": entry["scheme"],
           "kind": info["kind"], "objective": info.get("objective", ""),
           "expected_accuracy": sum(expected[o] * k for o, k in mix.items()) / n,
           **{k: v for k, v in entry.items() if k != "scheme"},
           "latency_p95_all_s": _percentile_all(ledger, 95),
           "latency_p50_all_s": _percentile_all(ledger, 50),
           "within_deadline_fraction": float(np.mean(
               [r.delivered and r.latency_s <= deadline_s for r in ledger])),
           "options": json.dumps({o: k for o, k in mix.items() if k})}
    for key in ("bound_energy_onboard_j", "bound_latency_mean_s", "lp_energy_onboard_j",
                "bound_delivered_fraction", "lp_solve_s"):
        if key in info:
            row[key] = info[key]
    return row


@dataclass
class Bench:
    """What every load, device and policy of a sweep shares: the schemes run once on the test
    tiles (payloads, predictions, FLOPs) and their expected accuracies, and the network. Which
    schemes were skipped (``skipped``: e.g. too large for the satellite's memory) holds for
    another device only if it has the same memory, as :func:`devices.what_if` profiles do."""

    outputs: dict
    expected: dict[str, float]
    labels: np.ndarray
    position: dict[int, int]
    plan: ContactPlan
    network: NetworkResources
    period_s: float
    skipped: list
    test_images: int

    @property
    def names(self) -> list[str]:
        return list(self.outputs)


def prepare_bench(scenario: EvalScenario, floors: Sequence[float], *,
                  plan: ContactPlan | None = None, network: NetworkResources | None = None,
                  progress: bool = True) -> Bench:
    """Run the scenario's schemes once; ScenarioError for a floor no option can meet."""
    if not floors or any(not 0 <= f <= 1 for f in floors):
        raise ScenarioError(f"floors must be accuracies in [0, 1], got {list(floors)}")
    plan = plan or scenario.orbit.build()  # an orbit error before minutes of schemes
    images, labels = test_images(scenario)
    outputs, skipped = run_schemes(scenario, images, progress, calibration_images(scenario))
    expected = {n: o.calibration_accuracy for n, o in outputs.items()}
    best = max(expected.values())
    unreachable = [f for f in floors if f > best]
    if unreachable:
        raise ScenarioError(f"floors {unreachable} cannot be met: the best reachable expected "
                            f"accuracy is {best:.4f} ({max(expected, key=expected.get)})")
    return Bench(outputs=outputs, expected=expected, labels=labels.numpy(),
                 position={i: i for i in range(len(images))},
                 plan=plan, network=network or scenario.network,
                 period_s=orbital_period_s(scenario.orbit.constellation.satrecs),
                 skipped=skipped, test_images=len(images))


def rows_at_load(bench: Bench, scenario: EvalScenario, load: float, floors: Sequence[float],
                 specs: Sequence[tuple[float | None, dict]], *, floor_mode: str = "mean",
                 oracle_max_load: float = math.inf, progress: bool = True) -> list[dict]:
    """One row per ``(floor, policy spec)`` at ``load`` (module docstring), on the scenario's
    device profiles, with the isolation bound and the violation check."""
    names = bench.names
    captures = captures_at_load(scenario, bench.plan, load, bench.test_images, bench.period_s)
    isolated = isolation_latencies(bench.outputs, captures, bench.position, bench.plan,
                                   bench.network, scenario)
    accuracy = np.array([bench.expected[n] for n in names])
    bounds = {floor: {f"isolation_bound_p{q}_s": percentile_bound(isolated, accuracy, floor,
                                                                  floor_mode, q)
                      for q in (50, 95)} for floor in floors}
    rows = []
    for floor, spec in tqdm(specs, desc=f"policies at {load:g}", leave=False,
                            disable=not progress):
        if spec["kind"] == "oracle" and load > oracle_max_load:
            continue
        ledger, info = run_policies(scenario, bench.outputs, captures, bench.labels,
                                    bench.position, bench.plan, bench.network, [spec],
                                    bench.period_s)
        row = policy_rows(load, floor, ledger, next(iter(info.values())), bench.expected,
                          bench.period_s)
        row["isolation_violations"] = isolation_violations(ledger, isolated, names)
        if floor is None:  # a fixed scheme: its own p95 with the network to itself
            column = isolated[:, names.index(spec["option"])]
            row["isolation_p95_s"] = float(np.percentile(column, 95, method="higher"))
        else:
            row.update(bounds[floor])
        rows.append(row)
    return rows


def policy_sweep(scenario: EvalScenario, loads: Sequence[float], floors: Sequence[float], *,
                 plan: ContactPlan | None = None, network: NetworkResources | None = None,
                 oracle_max_load: float = math.inf, floor_mode: str = "mean",
                 relay_hops: int | str = "auto", progress: bool = True
                 ) -> tuple[list[dict], dict]:
    """Rows (module docstring) and the run's metadata, with :func:`comparisons`; ``relay_hops``:
    the ISL hops within which the greedy controller counts other satellites' contacts (``auto``:
    the plan's :meth:`~research.opt.outlook.DownlinkOutlook.reach`, recorded as
    ``relay_reach``)."""
    check_loads(loads)
    bench = prepare_bench(scenario, floors, plan=plan, network=network, progress=progress)
    specs: list[tuple[float | None, dict]] = [(None, {"kind": "fixed", "option": n})
                                             for n in bench.names]
    for floor in floors:
        for objective in ("latency", "energy"):
            specs.append((floor, {"kind": "greedy", "floor": floor, "objective": objective,
                                  "floor_mode": floor_mode, "relay_hops": relay_hops}))
        for objective in ("latency", "energy"):
            specs.append((floor, {"kind": "oracle", "floor": floor, "objective": objective,
                                  "floor_mode": floor_mode}))
    rows: list[dict] = []
    for load in tqdm(list(loads), desc="loads", disable=not progress):
        rows += rows_at_load(bench, scenario, load, floors, specs, floor_mode=floor_mode,
                             oracle_max_load=oracle_max_load, progress=progress)
    meta = sweep_meta(scenario, bench, floors, floor_mode, relay_hops)
    meta["loads"] = list(map(float, loads))
    meta["comparisons"] = comparisons(rows)
    return rows, meta


def sweep_meta(scenario: EvalScenario, bench: Bench, floors: Sequence[float], floor_mode: str,
               relay_hops: int | str) -> dict:
    """The metadata every policy sweep records: scenario, plan, devices, options, settings."""
    sensor = get_sensor(scenario.captures.sensor)
    plan, period = bench.plan, bench.period_s
    return {"scenario": scenario.name, "orbital_period_s": period, "horizon_s": plan.horizon_s,
            "sensor": sensor.to_dict(), "realistic_per_orbit": sensor.scenes_per_orbit(period),
            "network": bench.network.to_dict(), "plan": plan.summary(),
            "satellite_profile": scenario.satellite_profile.to_dict(),
            "ground_profile": scenario.ground_profile.to_dict(), "skipped": bench.skipped,
            "floors": list(map(float, floors)), "floor_mode": floor_mode,
            "relay_hops": relay_hops, "relay_reach": relay_reach(plan, relay_hops),
            "expected_accuracy": bench.expected,
            "calibration": {"split": scenario.calibration.split,
                            "limit": scenario.calibration.limit},
            "test_images": bench.test_images}


def relay_reach(plan: ContactPlan, relay_hops: int | str) -> int:
    """The ISL hops the greedy controller counts on ``plan`` (as :class:`GreedyPolicy` resolves
    ``relay_hops``)."""
    if not plan.has_isl:
        return 0
    return DownlinkOutlook.for_plan(plan).reach() if relay_hops == "auto" else int(relay_hops)


def comparisons(rows: list[dict]) -> list[dict]:
    """Per (load, floor): the best fixed scheme meeting the floor by p95 latency (all scenes) and
    by on-board energy (among those delivering everything, if any does); the greedy policies' and
    the offline schedules' reduction from it; each greedy policy's excess over the offline
    schedule with its own objective (p95 against the latency oracle's, energy against the energy
    oracle's) and over that LP's bound (mean latency or energy; only where greedy delivers at
    least the bound's share within the deadline)."""
    out = []
    loads = sorted({r["per_orbit"] for r in rows})
    floors = sorted({r["floor"] for r in rows if r["floor"] is not None})
    for load in loads:
        here = [r for r in rows if r["per_orbit"] == load]
        for floor in floors:
            fixed = [r for r in here if r["kind"] == "fixed" and r["expected_accuracy"] >= floor]
            if not fixed:
                continue
            by_lat = min(fixed, key=lambda r: (r["latency_p95_all_s"], r["energy_onboard_j"]))
            by_energy = min(fixed, key=lambda r: (r["delivered_fraction"] < 1.0 - 1e-9,
                                                  r["energy_onboard_j"]))
            entry = {"per_orbit": load, "floor": floor,
                     "best_fixed_latency": by_lat["policy"],
                     "best_fixed_p95_s": by_lat["latency_p95_all_s"],
                     "best_fixed_energy": by_energy["policy"],
                     "best_fixed_energy_j": by_energy["energy_onboard_j"],
                     "best_fixed_energy_delivered": by_energy["delivered_fraction"]}
            # the same choice judged on the scenes' own tiles (no calibration noise)
            realised = [r for r in here if r["kind"] == "fixed" and r["accuracy"] >= floor]
            if realised:
                best = min(realised, key=lambda r: (r["latency_p95_all_s"],
                                                    r["energy_onboard_j"]))
                entry["best_fixed_realised"] = best["policy"]
                entry["best_fixed_realised_p95_s"] = best["latency_p95_all_s"]
                entry["best_fixed_realised_energy_j"] = best["energy_onboard_j"]
            for r in here:
                if r["floor"] != floor:
                    continue
                tag = f"{r['kind']}_{r['objective']}"
                entry[f"{tag}_p95_s"] = r["latency_p95_all_s"]
                entry[f"{tag}_p50_s"] = r.get("latency_p50_all_s", math.nan)
                entry[f"{tag}_mean_s"] = r["latency_mean_s"]
                entry[f"{tag}_energy_j"] = r["energy_onboard_j"]
                entry[f"{tag}_delivered"] = r["delivered_fraction"]
                entry[f"{tag}_within_deadline"] = r.get("within_deadline_fraction",
                                                        r["delivered_fraction"])
                entry[f"{tag}_accuracy"] = r["accuracy"]
                if "bound_energy_onboard_j" in r:
                    entry["bound_energy_j"] = r["bound_energy_onboard_j"]
                    entry["bound_delivered"] = r["bound_delivered_fraction"]
                if "bound_latency_mean_s" in r:
                    entry["bound_latency_mean_s"] = r["bound_latency_mean_s"]
                    entry["bound_latency_delivered"] = r["bound_delivered_fraction"]
                for q in (50, 95):
                    if f"isolation_bound_p{q}_s" in r:
                        entry[f"isolation_bound_p{q}_s"] = r[f"isolation_bound_p{q}_s"]
            entry["best_fixed_isolation_p95_s"] = by_lat.get("isolation_p95_s")
            lat, eng = entry.get("greedy_latency_p95_s"), entry.get("greedy_energy_energy_j")
            if lat is not None:
                entry["greedy_p95_reduction"] = _reduction(lat, entry["best_fixed_p95_s"])
                if "best_fixed_realised_p95_s" in entry:
                    entry["greedy_p95_reduction_realised"] = _reduction(
                        lat, entry["best_fixed_realised_p95_s"])
                if "isolation_bound_p95_s" in entry:
                    entry["greedy_p95_over_isolation"] = _excess(lat,
                                                                 entry["isolation_bound_p95_s"])
                    entry["greedy_p50_over_isolation"] = _excess(
                        entry["greedy_latency_p50_s"], entry["isolation_bound_p50_s"])
                if "oracle_latency_p95_s" in entry:
                    entry["greedy_p95_over_oracle"] = _excess(lat, entry["oracle_latency_p95_s"])
                    entry["oracle_p95_reduction"] = _reduction(entry["oracle_latency_p95_s"],
                                                               entry["best_fixed_p95_s"])
                if entry.get("bound_latency_mean_s") is not None and (
                        entry["greedy_latency_within_deadline"]
                        >= entry["bound_latency_delivered"] - 1e-9):
                    entry["greedy_mean_over_bound"] = _excess(entry["greedy_latency_mean_s"],
                                                              entry["bound_latency_mean_s"])
            if eng is not None:
                entry["greedy_energy_reduction"] = _reduction(eng, entry["best_fixed_energy_j"])
                if "oracle_energy_energy_j" in entry:
                    entry["greedy_energy_over_oracle"] = _excess(eng,
                                                                 entry["oracle_energy_energy_j"])
                # the bound is for delivering its share within the deadline: comparable when
                # greedy delivers as much within it
                if entry.get("bound_energy_j") and (entry["greedy_energy_within_deadline"]
                                                    >= entry["bound_delivered"] - 1e-9):
                    entry["greedy_energy_over_bound"] = _excess(eng, entry["bound_energy_j"])
            out.append(entry)
    return out


def _reduction(value: float, baseline: float) -> float | None:
    """``1 - value / baseline`` (None when either is infinite or the baseline is 0)."""
    if not (math.isfinite(value) and math.isfinite(baseline)) or baseline <= 0:
        return None
    return 1.0 - value / baseline


def _excess(value: float, reference: float) -> float | None:
    """``value / reference - 1`` (None when either is infinite or the reference is 0)."""
    if not (math.isfinite(value) and math.isfinite(reference)) or reference <= 0:
        return None
    return value / reference - 1.0


def write_policy_sweep(rows: list[dict], meta: dict, out: str | Path) -> dict[str, Path]:
    """``policy_sweep.{csv,json}`` and the figure under ``out``."""
    paths = write_rows(rows, out, "policy_sweep", meta=meta)
    for p in plot_policies(rows, meta, out):
        paths[p.suffix[1:]] = p
    return paths


def _energy_kj(row: dict) -> float:
    """On-board energy per scene in kJ, ``nan`` where scenes were lost (they spent less)."""
    return row["energy_onboard_j"] / 1e3 if row["delivered_fraction"] >= 0.999 else math.nan


def _minutes(x: float) -> float:  # seconds to minutes; an infinite p95 leaves a gap
    return x / 60 if math.isfinite(x) else math.nan


def plot_policies(rows: list[dict], meta: dict, out: str | Path,
                  floor: float | None = None) -> list[Path]:
    """(a) p95 latency and (c) on-board energy against load at one floor (0.95 if swept), (b) p95
    latency at the highest floor, fixed schemes against the greedy policies and the oracle; (d)
    accuracy against p95 latency at the load nearest the sensor's duty cycle, every floor."""
    floors = meta["floors"]
    floor = floor if floor is not None else (0.95 if 0.95 in floors else floors[-1])
    high = max(floors)
    loads = sorted({r["per_orbit"] for r in rows})
    expected = meta["expected_accuracy"]
    two = high != floor
    fig, axes = plt.subplots(1, 4 if two else 3, figsize=(22 if two else 17, 4.9))
    ax_lat, ax_high, ax_en, ax_par = axes if two else (axes[0], None, *axes[1:])
    styles = {"greedy-latency": dict(color="tab:red", lw=2.2, marker="o"),
              "greedy-energy": dict(color="darkorange", lw=2.2, marker="s"),
              "oracle-latency": dict(color="black", lw=1.6, marker="D", ls="--"),
              "oracle-energy": dict(color="dimgrey", lw=1.4, marker="d", ls="-.")}

    def series(select) -> tuple[list[float], list[dict]]:
        pts = sorted((r for r in rows if select(r)), key=lambda r: r["per_orbit"])
        return [r["per_orbit"] for r in pts], pts

    shades = plt.cm.viridis(np.linspace(0.0, 0.85, len(expected)))  # no red, orange or black
    panels = [(ax_lat, floor, True)] + ([(ax_high, high, True)] if two else []) + [
        (ax_en, floor, False)]
    for ax, level, latency in panels:
        value = (lambda r: _minutes(r["latency_p95_all_s"])) if latency else _energy_kj
        for (name, acc), shade in zip(expected.items(), shades, strict=True):
            meets = acc >= level
            x, pts = series(lambda r, n=name: r["kind"] == "fixed" and r["policy"] == n)
            style = dict(lw=1, marker=".", alpha=0.9 if meets else 0.35,
                         ls="-" if meets else ":", color=shade)
            label = f"fixed {name} ({100 * acc:.1f}%)"
            ax.plot(x, [value(r) for r in pts], label=label, **style)
        for tag, style in styles.items():
            kind, _, objective = tag.partition("-")
            x, pts = series(lambda r, k=kind, o=objective, f=level: r["kind"] == k
                            and r["floor"] == f and (not o or r["objective"] == o))
            if not pts:
                continue
            label = (f"{tag} policy" if kind != "oracle"
                     else f"offline schedule ({objective} LP, rounded)")
            ax.plot(x, [value(r) for r in pts], label=label, **style)
            if kind == "oracle" and objective == "energy" and not latency:
                ax.plot(x, [r["bound_energy_onboard_j"] / 1e3 for r in pts], color="black",
                        marker="v", ls=":", label="energy LP bound (none spends less)")
        x, pts = series(lambda r, f=level: r["kind"] == "greedy" and r["floor"] == f
                        and r["objective"] == "latency" and "isolation_bound_p95_s" in r)
        if latency and pts:
            ax.plot(x, [_minutes(r["isolation_bound_p95_s"]) for r in pts], color="black",
                    marker="^", ls=":", label="isolation bound on p95 (each scene alone: "
                    "none is faster)")
        ax.set_title(f"({'abc'[[p[0] for p in panels].index(ax)]}) "
                     + ("p95 latency" if latency else "on-board energy (compute + transmit)")
                     + f" at an expected-accuracy floor of {level:g}\n(dotted: fixed schemes "
                     "below the floor)", fontsize=9)
    real = meta.get("realistic_per_orbit")
    for ax, _, latency in panels:
        load_axes([ax], loads, "captures per satellite per orbit (offered load)")
        log_scale(ax, "y")
        if real:
            ax.axvline(real, color="grey", ls=":", lw=0.8)
        if latency:
            ax.axhline(meta["orbital_period_s"] / 60, color="grey", ls="--", lw=0.8)
            ax.set_ylabel("p95 latency over all scenes (min; gaps: >5% lost)")
    ax_en.set_ylabel("on-board energy per scene (kJ; gaps: scenes lost)")
    legend: dict = {}  # every panel's entries once (the isolation bound is on latency only)
    for ax in (ax_en, ax_lat):
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(name, handle)
    fig.legend(list(legend.values()), list(legend), fontsize=7, loc="lower center", ncol=7,
               frameon=False)

    target = min(loads, key=lambda x: abs(math.log(x / real)) if real else -x)
    here = [r for r in rows if r["per_orbit"] == target]
    for r in here:
        if r["kind"] == "fixed":
            ax_par.scatter(_minutes(r["latency_p95_all_s"]), 100 * r["accuracy"], s=18,
                           color="grey")
            ax_par.annotate(r["policy"], (_minutes(r["latency_p95_all_s"]), 100 * r["accuracy"]),
                            fontsize=6, color="grey", xytext=(3, 2), textcoords="offset points")
    for tag, style in styles.items():
        kind, _, objective = tag.partition("-")
        pts = sorted((r for r in here if r["kind"] == kind
                      and (not objective or r["objective"] == objective)), key=lambda r: r["floor"])
        if pts:
            xs = [_minutes(r["latency_p95_all_s"]) for r in pts]
            ys = [100 * r["accuracy"] for r in pts]
            ax_par.plot(xs, ys, label=tag, **style)
            if tag == "greedy-latency":
                for r, x, y in zip(pts, xs, ys, strict=True):
                    ax_par.annotate(f"floor {r['floor']:g}", (x, y), fontsize=6, color="tab:red",
                                    xytext=(-8, 6), textcoords="offset points", ha="right")
    log_scale(ax_par, "x")
    ax_par.set_xlabel("p95 latency over all scenes (min)")
    ax_par.set_ylabel("realised accuracy on the scenes' test tiles (%)")
    ax_par.set_title(f"({'d' if two else 'c'}) accuracy against latency at {target:g} captures per orbit, "
                     f"floors {', '.join(f'{f:g}' for f in floors)}", fontsize=9)
    ax_par.legend(fontsize=7)
    sensor, net = meta["sensor"], meta["network"]
    fig.suptitle(f"{meta['scenario']}: per-capture policies, {sensor['name']} scenes "
                 f"({sensor['tiles_per_scene']:,} tiles), {net['capacity']} links, on board "
                 f"{meta['satellite_profile']['name']}; dotted vertical: the sensor's duty cycle",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    return save_figure(fig, out, "policy_sweep")
