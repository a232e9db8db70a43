"""Microservices vs monolithic on-board models vs raw downlink on one multi-task workload.

:func:`serving_figure` runs a serving config (:func:`research.serving.experiment.run_serving`:
``summary.json``, ``outcomes.{csv,json}``), then writes ``serving_schemes.csv`` (one row per
scheme), draws ``serving.png/.pdf`` (latency distribution per scheme with p50/p95 marked, and
on-board memory, on-board compute, on-board energy and downlinked bytes per request) and writes
``serving_caption.md``. ``scripts/fig_serving.py`` parses the arguments.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from research.figures import save_figure
from research.serving.config import ServeConfig
from research.serving.experiment import run_serving

__all__ = ["COLOURS", "plot_serving", "serving_figure", "write_caption"]

COLOURS = {"microservice": "#1b9e77", "onboard_shared": "#e6ab02", "monolithic": "#d95f02",
           "ground_raw": "#7570b3", "ground_jpeg": "#e7298a", "ground_webp": "#66a61e",
           "ground_png": "#a6761d"}


def plot_serving(summary: dict, outcomes_csv: Path, out: Path) -> Path:
    """``serving.png/.pdf``: latency CDF per scheme (p50/p95 marked) and the on-board bars."""
    lat: dict[str, list[float]] = {s: [] for s in summary["schemes"]}
    with open(outcomes_csv) as fh:
        for row in csv.DictReader(fh):
            lat[row["scheme"]].append(float(row["latency_s"]))
    fig, axes = plt.subplots(1, 6, figsize=(20, 3.4),
                             gridspec_kw={"width_ratios": [2.2, 1, 1, 1, 1, 1]})
    ax = axes[0]
    for s, v in lat.items():
        x = np.sort(np.asarray(v))
        x = x[np.isfinite(x)]
        ax.plot(x, np.arange(1, len(x) + 1) / max(len(v), 1), color=COLOURS.get(s, "grey"), label=s)
        for q, ls in (("p50_latency_s", ":"), ("p95_latency_s", "--")):
            ax.axvline(summary["schemes"][s][q], color=COLOURS.get(s, "grey"), ls=ls, lw=0.8)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("latency capture -> answer on ground (s)")
    ax.set_ylabel("fraction of requests")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("latency (dotted p50, dashed p95)", fontsize=9)
    bars = [("landcover_acc", 100.0, "land-cover accuracy (%, measured)"),
            ("onboard_memory_bytes", 1e-6, "on-board weights (MB)"),
            ("onboard_flops", 1e-12, "on-board compute (TFLOP)"),
            ("energy_onboard_j", 1.0, "on-board J per request: compute + tx"),
            ("bytes_downlink", 1e-6, "downlinked MB per request")]
    names = list(summary["schemes"])
    for ax, (key, scale, title) in zip(axes[1:], bars, strict=True):
        if key == "energy_onboard_j":
            vals = [summary["schemes"][s]["energy_onboard_compute_j"]
                    + summary["schemes"][s]["energy_onboard_transmit_j"] for s in names]
        else:
            vals = [summary["schemes"][s][key] * scale for s in names]
        ax.bar(names, vals, color=[COLOURS.get(s, "grey") for s in names])
        if key == "landcover_acc":
            ax.set_ylim(min(vals) - 5, 100)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=7, rotation=20)
    fig.tight_layout()
    return save_figure(fig, out, "serving")[0]


def _tile_bytes(row: dict, how: str) -> str:
    """Bytes a tile took on the link: the codec's payload (served) or the image format's."""
    key = "token_bytes_per_tile" if how == "served" else f"{how}_bytes_per_tile"
    value = row.get(key)
    return "" if value is None else f"{value:.1f}"


def _network(summary: dict) -> str:
    n = summary.get("network") or {}
    if n.get("capacity") == "unlimited":
        return "capacity unlimited (no contention)"
    return ", ".join(f"{k} {v}" for k, v in n.items() if k != "storage_bytes") or "exclusive"


def write_caption(summary: dict, out: Path) -> None:
    """``serving_caption.md``: the run, its accuracy, a table per scheme and the verdict."""
    cfg, acc = summary["config"], summary["accuracy"]
    w = cfg.get("workload", {})
    lines = [
        "# serving.png",
        "",
        f"Run `{summary['name']}`: {w.get('sources')} capturing satellites, tasks "
        f"{'+'.join(w.get('tasks', []))} asked together per capture, {w.get('rate_hz')} "
        f"captures/s each, {w.get('tiles')} tiles per capture (modality {w.get('modality')}, "
        f"taken by the sources in turn), deadline {w.get('deadline_s')} s, "
        f"{w.get('horizon_s')} s of the contact plan.",
        "Latency runs from capture to the answer reaching any ground station (compute with FIFO "
        "queues per node; contact-plan transfers booked first come first served on link "
        f"directions, transmitters and station antennas: network {_network(summary)}).",
        f"Accuracy measured on {acc['images']} held-out embedded EuroSAT tiles per modality "
        f"(served: through the link codec {acc['codec']}; float: float32 tokens, as on board and "
        "after raw downlink; image formats: on the decoded tiles):",
        "",
        "| modality | sensor | raw B/tile | how | land cover | coarse | recall@1 | B/tile |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {m} | {r['sensor']} | {r['raw_bytes_per_tile']} | {how} | "
          f"{r[how]['landcover_acc']:.3f} | {r[how]['coarse_acc']:.3f} | "
          f"{r[how].get('retrieval_recall@1', float('nan')):.3f} | "
          f"{_tile_bytes(r, how)} |"
          for m, r in acc["modalities"].items() for how in r if isinstance(r[how], dict)],
        "",
        "Energy and downlinked bytes are means per request (on-board compute, on-board transmit, "
        "ground compute).",
        "",
        "| scheme | land cover | p50 s | p95 s | missed | tiles in time | on-board MB | "
        "on-board TFLOP | on-board J/req | tx J/req | ground J/req | down MB/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s, v in summary["schemes"].items():
        lines.append(f"| {s} | {v['landcover_acc']:.3f} | {v['p50_latency_s']:.3g} | "
                     f"{v['p95_latency_s']:.3g} | {v['missed']}/{v['requests']} | "
                     f"{v['delivered_tiles']}/{v['tiles']} | "
                     f"{v['onboard_memory_bytes'] / 1e6:.3g} | "
                     f"{v['onboard_flops'] / 1e12:.3g} | {v['energy_onboard_compute_j']:.3g} | "
                     f"{v['energy_onboard_transmit_j']:.3g} | {v['energy_ground_j']:.3g} | "
                     f"{v['bytes_downlink'] / 1e6:.4g} |")
    rep = summary.get("placement_report")
    if rep:
        binding = sorted({b for e in rep["epochs"] for b in e["binding"]})
        lines += ["", f"Placement: {len(rep['epochs'])} epochs; the MILP is strictly better than "
                  f"greedy in {rep['milp_strictly_better_epochs']}; fell back to greedy in "
                  f"{len(rep['fallbacks'])}"
                  + (f" ({'; '.join(f['reason'] for f in rep['fallbacks'])})" if rep["fallbacks"]
                     else "")
                  + f"; limits that bind: {', '.join(binding) if binding else 'none'}."]
    lines += ["", *[f"- {v}" for v in summary["verdict"]], ""]
    (out / "serving_caption.md").write_text("\n".join(lines))


def serving_figure(cfg: ServeConfig, out: str | Path) -> dict:
    """Run ``cfg`` into ``out`` and draw it; returns the run's summary (``summary.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = run_serving(cfg, out)
    with open(out / "serving_schemes.csv", "w", newline="") as fh:
        rows = [{"scheme": s, **v} for s, v in summary["schemes"].items()]
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_serving(summary, out / "outcomes.csv", out)
    write_caption(summary, out)
    return summary
