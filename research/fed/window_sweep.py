"""How much the ground-track partition's collection window matters: accuracy and client skew
against ``data.capture_window_s``, beside IID and Dirichlet partitions of the same images.

A short window gives each satellite one region (strong skew, and satellites in the night hold
nothing and are dropped); a window of many orbits tends to IID. Every point trains the head on
board (the collaborative scheme's accuracy per round is the same: same head, same features) for
the config's rounds, for each seed (:func:`research.fed.compare.seed_changes`). Writes
``fed_capture_window.png/.pdf`` and ``fed_capture_window.{csv,json}``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from research.data.imagefolder import EUROSAT_CLASSES
from research.fed.compare import seed_changes
from research.fed.config import FedConfig
from research.fed.partition_figure import partition_stats
from research.fed.runner import prepare, run
from research.figures import save_figure
from research.records import write_rows

__all__ = ["capture_window_sweep"]


def _point(cfg: FedConfig, plan, runs: Path, cache_dir: str, tag: str) -> dict:
    with warnings.catch_warnings():  # satellites without data are counted below
        warnings.filterwarnings("ignore", message=".*hold no training data.*")
        setup = prepare(cfg, plan=plan, cache_dir=cache_dir)
        res = run(cfg.replace(out_dir=str(runs / tag)), setup=setup)
    labels = setup.data.train_y.numpy()
    counts = np.stack([np.bincount(labels[c.indices], minlength=len(EUROSAT_CLASSES))
                       for c in setup.clients])
    planes = np.array([c.plane for c in setup.clients])
    stats = partition_stats(counts, planes)
    return {"final_accuracy": res.rows[-1]["accuracy"], "rounds": len(res.rows),
            "satellites_without_data": int((counts.sum(axis=1) == 0).sum()),
            "classes_with_5pct_mean": stats["classes_with_5pct_mean"],
            "l1_neighbour_in_plane": stats["l1_neighbour_in_plane"],
            "l1_same_slot_next_plane": stats["l1_same_slot_next_plane"]}


def capture_window_sweep(cfg: FedConfig, windows: Sequence[float], seeds: Sequence[int],
                         out: str | Path, runs: str | Path = "outputs/fed/runs_window",
                         cache_dir: str = "outputs/fed/cache", command: str = "") -> list[dict]:
    """Train on board for each window x seed (and IID, Dirichlet(``cfg.data.alpha``)); plot."""
    out, runs = Path(out), Path(runs)
    base = cfg.replace(scheme="onboard")
    plan = prepare(base, cache_dir=cache_dir).plan
    todo = [("ground_track", w) for w in windows] + [("iid", None), ("dirichlet", None)]
    rows = []
    for (partition, window), seed in tqdm([(t, s) for t in todo for s in seeds],
                                          desc="capture windows"):
        change = {"data.partition": partition, **seed_changes(seed)}
        if window is not None:
            change["data.capture_window_s"] = float(window)
        tag = f"{partition}_{window:g}_seed{seed}" if window else f"{partition}_seed{seed}"
        rows.append({"partition": partition, "capture_window_s": window, "seed": seed,
                     **_point(base.replace(**change), plan, runs, cache_dir, tag)})
    write_rows(rows, out, "fed_capture_window", meta={"command": command,
                                                      "config": base.to_dict()})
    _plot(rows, out, windows, command)
    return rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0
    return m, s


def _plot(rows: list[dict], out: Path, windows: Sequence[float], command: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [w / 3600 for w in windows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    track = {w: [r for r in rows if r["capture_window_s"] == w] for w in windows}
    for ax, key, label in ((axes[0], "final_accuracy", "test accuracy after the last round (%)"),
                           (axes[1], "classes_with_5pct_mean",
                            "classes >= 5% of a satellite's images"),
                           (axes[2], "satellites_without_data", "satellites without data")):
        scale = 100 if key == "final_accuracy" else 1
        ms = [_mean_std([r[key] * scale for r in track[w]]) for w in windows]
        ax.errorbar(hours, [m for m, _ in ms], yerr=[s for _, s in ms], marker="o",
                    capsize=3, label="ground track")
        for partition, style in (("iid", ":"), ("dirichlet", "--")):
            ref = [r[key] * scale for r in rows if r["partition"] == partition]
            if ref:
                ax.axhline(_mean_std(ref)[0], ls=style, color="gray", label=partition)
        ax.set_xscale("log")
        ax.set_xlabel("capture window (h)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    seeds = sorted({r["seed"] for r in rows})
    fig.suptitle(f"Ground-track partitions against the collection window (on board, mean and "
                 f"std over seeds {seeds}; IID and Dirichlet for reference; skew over the "
                 f"satellites holding data)", fontsize=10)
    fig.text(0.01, 0.01, f"`{command}`", fontsize=7)
    fig.subplots_adjust(bottom=0.2, wspace=0.3)
    return save_figure(fig, out, "fed_capture_window")
