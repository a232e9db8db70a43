"""How much a per-capture policy can gain over the best fixed scheme, read off the fixed schemes.

Why: a policy keeping a mean accuracy floor beats the best fixed scheme meeting that floor mostly
by mixing options, the two neighbours on the ladder of fixed schemes around the floor. How much
mixing can buy is set by the ladder and the load more than by the policy: at each load the fixed
schemes form a frontier of (expected accuracy, p95 latency); the floor falls between two of its
points, the best fixed scheme above it and the *lower neighbour*, the most accurate frontier point
below it (faster, by the frontier's definition, and not allowed alone). The lower neighbour's p95
is the reference this module measures the policy against: a mix of byte-bound options (the JPEG
ladder: more accurate costs more bytes) that keeps the floor sends more than the lower neighbour,
so only the timing of which scene gets what could make it faster. That is a reference, not a
bound: a policy may change *when* bytes queue, and the isolation bound of
:mod:`research.opt.isolation` is the bound. The mean bytes per tile of the cheapest scene-blind
mix of frontier options keeping the floor (every scene of an option costing its mean; the upper
concave hull of accuracy against bytes, interpolated at the floor) says whether the policy
already sends about as few bytes as mixing allows, so that what is left is timing; a policy that
picks by scene can send a little less (the offline LP does).

Input: the rows of :func:`research.eval.policy_sweep.policy_sweep` (or its JSON).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from research.eval.policy_sweep import _reduction
from research.figures import load_axes, save_figure
from research.opt.oracle import pareto_options

__all__ = ["fixed_frontier", "least_bytes_at", "ladder_headroom", "plot_headroom"]


def fixed_frontier(rows: Sequence[dict]) -> list[dict]:
    """Fixed-scheme rows of one load that no other is at least as accurate and as fast as (one of
    the two strictly), finite p95 only, by increasing expected accuracy."""
    fixed = [r for r in rows if r["kind"] == "fixed" and math.isfinite(r["latency_p95_all_s"])]
    acc = np.array([r["expected_accuracy"] for r in fixed])
    p95 = np.array([r["latency_p95_all_s"] for r in fixed])
    none = np.zeros(len(fixed))  # two criteria: accuracy and p95 (in the bytes slot)
    keep = pareto_options(acc, p95, none, none)
    return sorted((fixed[o] for o in keep), key=lambda r: r["expected_accuracy"])


def least_bytes_at(options: Sequence[dict], floor: float) -> float:
    """Mean bytes per tile of the cheapest scene-blind mix of ``options`` (rows with
    ``expected_accuracy`` and ``bytes_per_tile``, each scene of an option costing its mean) whose
    mean expected accuracy reaches ``floor``: the upper concave hull of accuracy against bytes,
    interpolated at the floor (``inf`` if no option reaches it)."""
    pts = sorted({(r["bytes_per_tile"], r["expected_accuracy"]) for r in options})
    if not pts or max(a for _, a in pts) < floor:
        return math.inf
    best = min(b for b, a in pts if a >= floor)  # one option alone
    for b1, a1 in pts:  # two options mixed: the hull's segments are among these pairs
        for b2, a2 in pts:
            if a1 < floor <= a2:
                share = (floor - a1) / (a2 - a1)  # of the scenes sent with the second
                best = min(best, b1 + share * (b2 - b1))
    return best


def ladder_headroom(rows: Sequence[dict]) -> list[dict]:
    """Per (load, floor) of the sweep: the best fixed scheme meeting the floor and its p95; the
    lower neighbour and its p95; the headroom ``1 - lower / best`` (the p95 reduction a policy
    gets if it keeps the floor as fast as the lower neighbour alone); the greedy latency policy's
    reduction and the share of the headroom it takes; the mean bytes per tile of the cheapest
    scene-blind mix of frontier options keeping the floor, beside the greedy policy's and the two
    fixed schemes'. A floor no finishing fixed scheme meets gets ``best_fixed: None`` only."""
    out = []
    for load in sorted({r["per_orbit"] for r in rows}):
        here = [r for r in rows if r["per_orbit"] == load]
        frontier = fixed_frontier(here)
        for floor in sorted({r["floor"] for r in here if r["floor"] is not None}):
            above = [r for r in frontier if r["expected_accuracy"] >= floor]
            below = [r for r in frontier if r["expected_accuracy"] < floor]
            greedy = [r for r in here if r["kind"] == "greedy" and r["floor"] == floor
                      and r["objective"] == "latency"]
            if not above:  # no fixed scheme meeting the floor finishes: nothing to compare with
                out.append({"per_orbit": load, "floor": floor, "best_fixed": None})
                continue
            best = min(above, key=lambda r: r["latency_p95_all_s"])
            entry = {"per_orbit": load, "floor": floor, "best_fixed": best["policy"],
                     "best_fixed_p95_s": best["latency_p95_all_s"],
                     "best_fixed_bytes_per_tile": best["bytes_per_tile"],
                     "least_bytes_per_tile": least_bytes_at(frontier, floor)}
            if below:
                lower = below[-1]
                entry.update(lower_neighbour=lower["policy"],
                             lower_neighbour_accuracy=lower["expected_accuracy"],
                             lower_neighbour_p95_s=lower["latency_p95_all_s"],
                             lower_neighbour_bytes_per_tile=lower["bytes_per_tile"],
                             headroom=1.0 - lower["latency_p95_all_s"] / best["latency_p95_all_s"])
            if greedy:
                g = greedy[0]
                entry.update(greedy_p95_s=g["latency_p95_all_s"],
                             greedy_bytes_per_tile=g["bytes_per_tile"],
                             greedy_p95_reduction=_reduction(g["latency_p95_all_s"],
                                                             best["latency_p95_all_s"]))
                if entry.get("headroom", 0) > 0 and entry["greedy_p95_reduction"] is not None:
                    entry["greedy_share_of_headroom"] = (entry["greedy_p95_reduction"]
                                                         / entry["headroom"])
            out.append(entry)
    return out


def plot_headroom(entries: Sequence[dict], out: str | Path, target: float | None = 0.30,
                  duty_cycle: float | None = None, title: str = "") -> list[Path]:
    """(a) p95 reduction against the best fixed scheme over load, per floor: the ladder's headroom
    (dashed) and the greedy policy's (solid); (b) the greedy policy's mean bytes per tile over the
    cheapest scene-blind mix keeping the floor."""
    fig, (ax_red, ax_bytes) = plt.subplots(1, 2, figsize=(12, 4.4))
    floors = sorted({e["floor"] for e in entries})
    loads = sorted({e["per_orbit"] for e in entries})
    colours = plt.cm.viridis([i / max(1, len(floors) - 1) * 0.85 for i in range(len(floors))])
    for floor, colour in zip(floors, colours, strict=True):
        pts = [e for e in entries if e["floor"] == floor]

        def pct(key: str, pts: list[dict] = pts) -> list[float]:
            return [100 * e[key] if e.get(key) is not None and math.isfinite(e[key]) else math.nan
                    for e in pts]

        x = [e["per_orbit"] for e in pts]
        names = {f"{e['lower_neighbour']} for {e['best_fixed']}" for e in pts
                 if "lower_neighbour" in e}
        if names:  # a floor at the bottom of the ladder has no lower neighbour
            ax_red.plot(x, pct("headroom"), ls="--", marker="^", color=colour,
                        label=f"floor {floor:g}: headroom ({', '.join(sorted(names))} alone)")
        ax_red.plot(x, pct("greedy_p95_reduction"), ls="-", marker="o", color=colour, lw=2,
                    label=f"floor {floor:g}: greedy controller")
        ratio = [e["greedy_bytes_per_tile"] / e["least_bytes_per_tile"] - 1
                 if "greedy_bytes_per_tile" in e and math.isfinite(e["least_bytes_per_tile"])
                 else math.nan for e in pts]
        ax_bytes.plot(x, [100 * r for r in ratio], marker="o", color=colour,
                      label=f"floor {floor:g}")
    if target is not None:
        ax_red.axhline(100 * target, color="tab:red", ls=":", lw=1,
                       label=f"target: {100 * target:g}% below the best fixed")
    ax_red.axhline(0, color="grey", lw=0.6)
    ax_bytes.axhline(0, color="grey", lw=0.6)
    for ax in (ax_red, ax_bytes):
        load_axes([ax], loads, "captures per satellite per orbit (offered load)")
        if duty_cycle is not None:
            ax.axvline(duty_cycle, color="grey", ls=":", lw=0.8)
        ax.grid(alpha=0.3)
    ax_red.set_ylabel("p95 latency below the best fixed scheme (%)")
    ax_red.set_title("(a) what the ladder leaves a mix of options, and what the controller takes",
                     fontsize=9)
    ax_red.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2,
                  frameon=False)
    ax_bytes.set_ylabel("bytes per tile over the cheapest mix (%)")
    ax_bytes.set_title("(b) the controller's bytes over the cheapest scene-blind mix\n"
                       "of frontier options keeping the floor", fontsize=9)
    ax_bytes.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, "policy_headroom")
