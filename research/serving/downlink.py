"""Serving against downlink capacity: where a scheme's bytes, not its compute, decide.

Which scheme delivers more tiles depends on which resource runs out first: on-board compute
(the on-board models and the microservices' front) or the downlink (tiles, tokens or results).
This sweep holds the workload fixed (one offered load) and caps the satellites' downlink modem
rate (``max_rate_bps`` of the plan's downlink model, the share of the radio serving gets; ISLs
and stations unchanged), from narrowband (a cubesat's S-band, ~1 Mbit/s) up to the uncapped
X-band. Everything else is as in :mod:`research.serving.load`: the services, their measured
accuracy and payload sizes are built once; each cap rebuilds the contact plan and runs every
scheme on fresh network states, placement re-solved. The **advantage** of microservices at a cap
is their tiles delivered in time over the best other scheme's.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from research.configfile import merge
from research.figures import save_figure
from research.serving.config import ServeConfig, parse_serve_config
from research.serving.experiment import compare_setup, prepare_serving
from research.serving.figure import COLOURS
from research.serving.load import KEYS, checked_task_sets, write_sweep
from research.workload import orbital_period_s

__all__ = ["advantage", "downlink_sweep", "plot_downlink_sweep", "with_downlink_cap",
           "write_downlink_sweep"]


def with_downlink_cap(cfg: ServeConfig, max_rate_bps: float | None) -> ServeConfig:
    """``cfg`` with its plan's downlink modem capped at ``max_rate_bps`` (``None``: the link
    model's own cap)."""
    if max_rate_bps is not None and not (0 < max_rate_bps < math.inf):
        raise ValueError(f"downlink rate cap must be a finite number of bit/s > 0 or None, "
                         f"got {max_rate_bps!r}")
    link = _downlink(cfg)
    spec = {"model": "rf", **dataclasses.asdict(link)}
    if max_rate_bps is not None:
        spec["max_rate_bps"] = float(max_rate_bps)
    raw = merge(cfg.raw, {"orbit": {"links": {"downlink": spec}}})
    return parse_serve_config(raw, default_name=cfg.name)


def _downlink(cfg: ServeConfig):
    from research.orbit.builder import default_links

    return cfg.orbit_config().links.get("downlink") or default_links()["downlink"]


def downlink_sweep(cfg: ServeConfig, rates_bps: Sequence[float | None], per_orbit: float,
                   task_sets: Sequence[Sequence[str]] | None = None, *,
                   progress: bool = True) -> tuple[list[dict], dict]:
    """Rows ``{downlink_max_rate_bps, per_orbit, tasks, scheme, ...}`` and the metadata (with
    :func:`advantage`)."""
    if not rates_bps:
        raise ValueError("rates_bps must name at least one downlink rate cap (None: uncapped)")
    if not (isinstance(per_orbit, (int, float)) and per_orbit > 0):
        raise ValueError(f"per_orbit must be captures per source per orbit > 0, got {per_orbit!r}")
    task_sets = checked_task_sets(cfg, task_sets)
    capped = [with_downlink_cap(cfg, r) for r in rates_bps]  # every bad value before any work
    setup = prepare_serving(cfg)
    period = orbital_period_s(cfg.orbit_config().constellation.satrecs)
    rows: list[dict] = []
    for rate, cfg_r in tqdm(list(zip(rates_bps, capped, strict=True)), desc="downlink caps",
                            disable=not progress):
        setup_r = replace(setup, plan=cfg_r.build_plan())
        for tasks in task_sets:
            demands = [replace(d, rate_hz=per_orbit / period, tasks=tuple(tasks))
                       for d in setup.demands]
            cmp = compare_setup(cfg_r, setup_r, demands)
            for scheme, s in cmp.summaries.items():
                rows.append({"downlink_max_rate_bps": rate, "per_orbit": float(per_orbit),
                             "tasks": "+".join(tasks), "scheme": scheme,
                             **{k: s[k] for k in KEYS},
                             "policy": "option_mix" in s,
                             "option_mix": json.dumps(s.get("option_mix", {scheme: 1.0}))})
    w = cfg.workload
    meta = {"name": cfg.name, "orbital_period_s": period, "deadline_s": w.deadline_s,
            "horizon_s": min(w.horizon_s, setup.plan.horizon_s), "sources": len(setup.demands),
            "tiles_per_capture": w.tiles, "modalities": w.modalities, "per_orbit": per_orbit,
            "satellite_profile": cfg.nodes.satellite_profile, "network": cfg.network.to_dict(),
            "downlink": _downlink(cfg).name, "codec": cfg.model.codec,
            "retrieval_answer": cfg.model.retrieval_answer,
            "placement": cfg.placement.method, "accuracy": setup.accuracy,
            "rates_bps": list(rates_bps), "task_sets": task_sets}
    meta["advantage"] = advantage(rows, w.deadline_s)
    return rows, meta


def advantage(rows: list[dict], deadline_s: float, scheme: str = "microservice") -> list[dict]:
    """Per (cap, task set): ``scheme``'s tiles delivered in time over the best other scheme's,
    naming that scheme (``inf`` when no other delivers any, ``nan`` when none does), and
    whether ``scheme``'s p95 latency stays within the deadline. Policies (rows with ``policy``
    true) choose among the schemes, so they are never the "other" scheme."""
    out = []
    keys = dict.fromkeys((r["downlink_max_rate_bps"], r["tasks"]) for r in rows)
    for rate, tasks in keys:
        here = [r for r in rows if r["downlink_max_rate_bps"] == rate and r["tasks"] == tasks]
        mine = next(r for r in here if r["scheme"] == scheme)
        best = max((r for r in here if r["scheme"] != scheme and not r.get("policy")),
                   key=lambda r: r["delivered_tiles"])
        if best["delivered_tiles"]:
            ratio = mine["delivered_tiles"] / best["delivered_tiles"]
        else:  # no other scheme delivers: infinitely better, or no better if neither does
            ratio = math.inf if mine["delivered_tiles"] else math.nan
        out.append({"downlink_max_rate_bps": rate, "tasks": tasks, "best_other": best["scheme"],
                    "ratio": ratio, "p95_within_deadline": mine["p95_latency_s"] <= deadline_s})
    return out


MARKERS = {"microservice": ("o", 6), "onboard_shared": ("s", 5), "monolithic": ("x", 7),
           "ground_raw": ("^", 5), "ground_jpeg": ("v", 5)}
"""Distinct markers: schemes that deliver the same tiles overlap, and must stay visible."""
POLICY_COLOURS = ("black", "#666666", "#1f78b4", "#b15928")
"""Per-request policies (stars), in the order the config lists them."""


def _mbps(rate: float | None, uncapped_at: float) -> float:
    return uncapped_at if rate is None else rate / 1e6


def plot_downlink_sweep(rows: list[dict], meta: dict, out: str | Path) -> list[Path]:
    """Tiles answered in time, p95 latency and the microservices' advantage against the cap."""
    rates = [r for r in meta["rates_bps"] if r is not None]
    uncapped_at = (max(rates) / 1e6 * 4) if rates else 1.0
    fig, (ax_del, ax_lat, ax_adv) = plt.subplots(1, 3, figsize=(15, 4.3))
    styles = ["-", "--", ":", "-."]
    task_sets = list(dict.fromkeys(r["tasks"] for r in rows))
    policies = list(dict.fromkeys(r["scheme"] for r in rows if r.get("policy")))
    for name in dict.fromkeys(r["scheme"] for r in rows):
        for j, tasks in enumerate(task_sets):
            pts = sorted((_mbps(r["downlink_max_rate_bps"], uncapped_at),
                          r["delivered_fraction"], r["p95_latency_s"])
                         for r in rows if r["scheme"] == name and r["tasks"] == tasks)
            marker, size = MARKERS.get(name, ("*", 7))
            colour = (COLOURS.get(name)
                      or POLICY_COLOURS[policies.index(name) % len(POLICY_COLOURS)])
            kw = {"color": colour, "ls": styles[j % len(styles)], "marker": marker, "ms": size,
                  "mfc": "none", "lw": 1.2, "label": f"{name}, {tasks}"}
            ax_del.plot([p[0] for p in pts], [100 * p[1] for p in pts], **kw)
            ax_lat.plot([p[0] for p in pts],
                        [p[2] if math.isfinite(p[2]) else float("nan") for p in pts], **kw)
    for j, tasks in enumerate(task_sets):
        pts = sorted((_mbps(a["downlink_max_rate_bps"], uncapped_at), a["ratio"])
                     for a in meta["advantage"] if a["tasks"] == tasks)
        ax_adv.plot([p[0] for p in pts], [min(p[1], 1e3) for p in pts], color="black",
                    ls=styles[j % len(styles)], marker="o", ms=3.5, label=tasks)
    ax_adv.axhline(2.0, color="tab:red", ls="--", lw=0.8)
    ax_adv.annotate("2x", (0.01, 2.0), xycoords=("axes fraction", "data"), va="bottom",
                    fontsize=8, color="tab:red")
    ax_lat.axhline(meta["deadline_s"], color="black", ls="--", lw=0.8)
    ticks = sorted({_mbps(r, uncapped_at) for r in meta["rates_bps"]})
    labels = [f"{t:g}" if t != uncapped_at or None not in meta["rates_bps"] else "none"
              for t in ticks]
    for ax in (ax_del, ax_lat, ax_adv):
        ax.set_xscale("log")
        ax.set_xticks(ticks, labels)
        ax.minorticks_off()
        ax.set_xlabel(f"downlink modem cap (Mbit/s; {meta['downlink']})")
    ax_del.set_ylabel("requests answered within the deadline (%)")
    ax_del.set_ylim(-3, 103)
    ax_lat.set_yscale("log")
    ax_lat.set_ylabel("p95 latency, capture to answer on ground (s)")
    ax_adv.set_yscale("log")
    ax_adv.set_ylabel("microservice tiles in time / best other scheme's")
    ax_adv.legend(fontsize=7, title="tasks per capture", title_fontsize=7)
    fig.suptitle(f"{meta['name']}: {meta['sources']} sources x {meta['per_orbit']:g} captures "
                 f"per orbit x {meta['tiles_per_capture']} tiles "
                 f"({'/'.join(meta['modalities'])}), deadline {meta['deadline_s']:g} s, "
                 f"on board {meta['satellite_profile']}; codec {meta['codec']}; on-board "
                 f"answers carry a {meta.get('retrieval_answer', 'float16')} embedding", fontsize=9)
    fig.tight_layout()
    handles, labels = ax_del.get_legend_handles_labels()
    ax_del.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(1.7, -0.15),
                  ncol=4, title="scheme, tasks per capture", title_fontsize=7)
    return save_figure(fig, out, "serving_downlink")


def write_downlink_sweep(rows: list[dict], meta: dict, out: str | Path) -> dict[str, Path]:
    """``serving_downlink.{csv,json}`` and the figure under ``out``."""
    return write_sweep(rows, meta, out, "serving_downlink", plot_downlink_sweep)
