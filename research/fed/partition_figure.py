"""Figure of how the training images are dealt: where each satellite imaged, and the class mix
each one holds under the ground-track partition against Dirichlet label skew.

Writes ``fed_partition.png/.pdf``, ``fed_partition_counts.csv/.json`` (images per satellite and class,
both partitions) and ``fed_partition_summary.json`` (how skewed and how plane-correlated).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from research.data.imagefolder import EUROSAT_CLASSES  # noqa: E402
from research.fed.config import FedConfig  # noqa: E402
from research.fed.ground_track import captures  # noqa: E402
from research.fed.runner import prepare  # noqa: E402
from research.figures import save_figure  # noqa: E402
from research.orbit import load_config as load_orbit_config  # noqa: E402
from research.orbit import parse_config as parse_orbit_config  # noqa: E402
from research.orbit.land import CELL_DEG, land_fraction  # noqa: E402
from research.records import write_rows  # noqa: E402

__all__ = ["partition_figure", "partition_stats"]


def _counts(setup, labels: np.ndarray) -> np.ndarray:
    return np.stack([np.bincount(labels[c.indices], minlength=len(EUROSAT_CLASSES))
                     for c in setup.clients])


def partition_stats(counts: np.ndarray, planes: np.ndarray) -> dict:
    """Skew (classes held, SeaLake share) and plane correlation (mean L1 distance of class mixes
    between neighbours in a plane against the same slot in the next plane), over the satellites
    that hold data (the others have no mix)."""
    sizes = counts.sum(axis=1)
    held_any = sizes > 0
    if not held_any.any():
        raise ValueError("no satellite holds any image: nothing to describe")
    mix = counts / np.maximum(sizes, 1)[:, None]
    sea = mix[held_any, EUROSAT_CLASSES.index("SeaLake")]
    d_same, d_other = [], []
    uniq = sorted(set(planes.tolist()))
    for p_i, p in enumerate(uniq):
        own = np.flatnonzero(planes == p)
        nxt = np.flatnonzero(planes == uniq[(p_i + 1) % len(uniq)])
        for k, i in enumerate(own):
            pairs = [(i, own[(k + 1) % len(own)], d_same)]
            if k < len(nxt):
                pairs.append((i, nxt[k], d_other))
            for a, b, into in pairs:
                if a != b and held_any[a] and held_any[b]:  # one-satellite planes: no pair
                    into.append(np.abs(mix[a] - mix[b]).sum())
    held = (counts >= 0.05 * np.maximum(sizes, 1)[:, None]).sum(axis=1)[held_any]
    return {"images_per_satellite": [int(sizes[held_any].min()), int(sizes.max())],
            "classes_with_5pct_mean": float(held.mean()),
            "sealake_share_range": [float(sea.min()), float(sea.max())],
            "l1_neighbour_in_plane": float(np.mean(d_same)) if d_same else None,
            "l1_same_slot_next_plane": float(np.mean(d_other)) if d_other else None}


def partition_figure(cfg: FedConfig, out: str | Path, cache_dir: str = "outputs/fed/cache",
                     command: str = "") -> list[Path]:
    """Deal ``cfg``'s training set by ground track and by Dirichlet(``cfg.data.alpha``); plot."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    track_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data,
                                                                  partition="ground_track"))
    dir_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, partition="dirichlet"))
    track = prepare(track_cfg, cache_dir=cache_dir)
    dirichlet = prepare(dir_cfg, plan=track.plan, cache_dir=cache_dir)
    labels = track.data.train_y.numpy()
    sats = track.plan.satellites
    planes = np.array([track.plan.plane_of(s) for s in sats])
    counts = {"ground_track": _counts(track, labels), "dirichlet": _counts(dirichlet, labels)}
    write_rows([{"partition": name, "satellite": s, "plane": int(p),
                 **{c: int(v) for c, v in zip(EUROSAT_CLASSES, row, strict=True)}}
                for name, table in counts.items()
                for s, p, row in zip(sats, planes, table, strict=True)],
               out, "fed_partition_counts")
    window = cfg.data.capture_window_s
    summary = {"config": cfg.name, "capture_window_s": window, "alpha": cfg.data.alpha,
               "training_images": len(labels), "satellites": len(sats),
               **{name: partition_stats(table, planes) for name, table in counts.items()},
               "command": command}
    (out / "fed_partition_summary.json").write_text(json.dumps(summary, indent=1))

    scenario = (load_orbit_config(cfg.scenario) if isinstance(cfg.scenario, str)
                else parse_orbit_config(cfg.scenario, "<fed scenario>"))
    fig = plt.figure(figsize=(13, 8.2))
    ax_map = fig.add_axes([0.05, 0.57, 0.62, 0.39])
    lats = np.arange(90 - CELL_DEG / 2, -90, -CELL_DEG)
    lons = np.arange(-180 + CELL_DEG / 2, 180, CELL_DEG)
    glat, glon = np.meshgrid(lats, lons, indexing="ij")
    ax_map.imshow(land_fraction(glat, glon), extent=(-180, 180, -90, 90), cmap="Greys",
                  vmin=-0.1, vmax=3.0, origin="upper")
    lat, lon, imaged = captures(scenario, window)
    colours = plt.get_cmap("tab10")
    for i, p in enumerate(planes):
        ax_map.scatter(lon[i][imaged[i]], lat[i][imaged[i]], s=1.5, color=colours(p % 10),
                       label=f"plane {p}" if i == np.flatnonzero(planes == p)[0] else None)
    ax_map.set(xlim=(-180, 180), ylim=(-90, 90), xlabel="longitude (deg)",
               ylabel="latitude (deg)",
               title=f"Daylight captures over the first {window:g} s (SGP4; grey: land, GLOBE)")
    ax_map.legend(fontsize=7, markerscale=5, loc="lower left", ncol=3)
    ax_txt = fig.add_axes([0.70, 0.57, 0.28, 0.39])
    ax_txt.axis("off")
    lines = [f"{len(labels)} training images, {len(sats)} satellites", ""]
    for name, key in (("ground track", "ground_track"), (f"Dirichlet({cfg.data.alpha})",
                                                         "dirichlet")):
        s = summary[key]
        lines += [name, f"  images/satellite {s['images_per_satellite'][0]}-"
                        f"{s['images_per_satellite'][1]}",
                  f"  classes >= 5% (mean) {s['classes_with_5pct_mean']:.1f}",
                  f"  SeaLake share {s['sealake_share_range'][0]:.2f}-"
                  f"{s['sealake_share_range'][1]:.2f}",
                  f"  L1(mix): plane neighbour {s['l1_neighbour_in_plane']:.2f},",
                  f"     next plane {s['l1_same_slot_next_plane']:.2f}", ""]
    ax_txt.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=9)
    cmap = plt.get_cmap("tab10")
    for row, (name, title) in enumerate((("ground_track", "ground track"),
                                         ("dirichlet", f"Dirichlet(alpha={cfg.data.alpha})"))):
        ax = fig.add_axes([0.05, 0.27 - 0.23 * row, 0.93, 0.17])
        table = counts[name]
        bottom = np.zeros(len(sats))
        for c, cls in enumerate(EUROSAT_CLASSES):
            ax.bar(np.arange(len(sats)), table[:, c], bottom=bottom, color=cmap(c), width=0.9,
                   label=cls if row == 0 else None)
            bottom += table[:, c]
        for b in np.flatnonzero(np.diff(planes)) + 0.5:
            ax.axvline(b, color="k", lw=0.6)
        ax.set(xlim=(-0.6, len(sats) - 0.4), ylabel="images",
               title=f"{title}: images per satellite and class (satellites in plane order; "
                     "lines between planes)")
        ax.set_xticks([])
        if row == 0:
            ax.legend(loc="lower center", ncol=10, fontsize=7, bbox_to_anchor=(0.5, 1.18))
    return save_figure(fig, out, "fed_partition")
