"""The server optimiser under differential privacy, tuned with the same effort for every arm.

FedAvgM (``train.server_lr``, ``train.server_momentum``) is post-processing of the released
average, so it costs no privacy budget, and it is the usual first remedy for DP-FedAvg's slow,
clipped progress (McMahan et al. 2018 use server momentum). :func:`server_opt_grid` runs one
sweep (:func:`research.fed.privacy_curve.sweep`: non-private, clipping only, one epsilon) per
setting, so the non-private arm gets exactly the grid the private arms get, and writes
``fed_privacy_server_opt.{csv,json,png,pdf}``.

Each row also carries a diagnostic: the norm of the Gaussian noise on the released mean
(``z * clip * sqrt(d) / K``, modelled from the mechanism: ``d`` parameters, ``K`` satellites, exact
when all K train and are aggregated every round, as in the committed runs) beside the measured
median change of the head per round in the clipping-only run (from its checkpoints; after the
server step, so for plain FedAvg it is the clipped mean itself). Within one round a server step
scales signal and noise alike; across rounds momentum filters them differently (a steady signal
grows by ``1 / (1 - m)``, independent noise by ``1 / sqrt(1 - m^2)``), so whether it pays is
measured, not assumed.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from research.fed.config import FedConfig
from research.fed.privacy import Privacy
from research.fed.privacy_curve import LEVEL_STYLE, sweep
from research.fed.runner import Setup, prepare
from research.figures import save_figure
from research.models.averaging import flatten
from research.records import write_rows

__all__ = ["chosen_on_validation", "median_step_norm", "plot_server_opt", "replot_server_opt", "server_opt_grid"]


def median_step_norm(run_dir: Path) -> float | None:
    """Median L2 norm of the head's change from one round to the next, read from a run's
    per-round checkpoints (None when fewer than two rounds were kept)."""
    files = sorted(Path(run_dir).glob("round_*.pt"))
    heads = [flatten(torch.load(f, weights_only=True)["state"]["head"]) for f in files]
    steps = [float((b - a).norm()) for a, b in zip(heads, heads[1:], strict=False)]
    return statistics.median(steps) if steps else None


def _tag(lr: float, momentum: float, rounds: int | None) -> str:
    return f"slr{lr:g}_m{momentum:g}" + ("" if rounds is None else f"_r{rounds}")


def server_opt_grid(base: FedConfig, out: Path, settings: Sequence[tuple[float, ...]], *,
                    levels: Sequence[str], epsilon: float, seed: int, clips: dict[str, float],
                    runs: Path, setup: Setup | None = None, command: str = "",
                    cache_dir: str = "outputs/fed/cache") -> list[dict]:
    """One sweep per ``(server_lr, server_momentum[, rounds])`` in ``settings`` (rounds: the
    config's when absent; under DP the noise is calibrated to them); a row per setting."""
    out, runs = Path(out), Path(runs)
    setup = setup or prepare(base, cache_dir=cache_dir)
    dims = sum(v.numel() for v in setup.initial.values())
    cohort = sum(1 for c in setup.clients if c.n > 0)
    rows = []
    for setting in settings:
        lr, momentum = setting[:2]
        rounds = int(setting[2]) if len(setting) > 2 else base.train.rounds
        tag = _tag(lr, momentum, rounds if len(setting) > 2 else None)
        cfg = base.replace(**{"train.server_lr": lr, "train.server_momentum": momentum,
                              "train.rounds": rounds})
        # each setting's own summary and figure go beside its runs; the grid's go to ``out``
        s = sweep(cfg, runs / tag, levels=levels, epsilons=[epsilon], seeds=[seed], clips=clips,
                  runs=runs / tag, setup=setup, command=command)
        row = {"server_lr": lr, "server_momentum": momentum, "rounds": rounds,
               "epsilon": epsilon, "seed": seed,
               "non_private_pct": s["non_private"]["accuracy_mean_pct"],
               "non_private_val_pct": s["non_private"]["val_accuracy_mean_pct"]}
        for level in levels:
            (dp,) = [p for p in s["private"] if p["level"] == level]
            (co,) = [c for c in s["clip_only"] if c["level"] == level]
            row[f"{level}_clip_only_pct"] = co["accuracy_mean_pct"]
            row[f"{level}_clip_only_val_pct"] = co["val_accuracy_mean_pct"]
            row[f"{level}_private_pct"] = dp["accuracy_mean_pct"]
            row[f"{level}_private_val_pct"] = dp["val_accuracy_mean_pct"]
            row[f"{level}_gap_pts"] = dp["gap_pts"]
        if "satellite" in levels:
            z = Privacy(cfg.replace(**{"privacy.level": "satellite",
                                       "privacy.epsilon": epsilon}).privacy,
                        cfg.train).satellite_noise_multiplier()
            row["satellite_noise_norm_on_mean"] = z * clips["satellite"] * math.sqrt(dims) / cohort
            row["satellite_clip_only_median_step"] = median_step_norm(
                runs / tag / f"satellite_cliponly_seed{seed}")
        rows.append(row)
        print(f"{tag}: non-private {row['non_private_pct']:.2f}%  " + "  ".join(
            f"{lv} eps {epsilon:g} {row[f'{lv}_private_pct']:.2f}%" for lv in levels), flush=True)
    meta = {"command": command, "clips": clips, "parameters": dims, "satellites_training": cohort,
            "config": base.to_dict(), "chosen_on_validation": chosen_on_validation(rows, levels)}
    for arm, pick in (meta["chosen_on_validation"] or {}).items():
        print(f"chosen on validation, {arm}: {_tag(pick['server_lr'], pick['server_momentum'], None)}"
              f" r{pick['rounds']}: val {pick['val_pct']:.2f}%, test {pick['test_pct']:.2f}%", flush=True)
    write_rows(rows, out, "fed_privacy_server_opt", meta=meta)
    plot_server_opt(rows, out, levels)
    return rows


def chosen_on_validation(rows: list[dict], levels: Sequence[str]) -> dict | None:
    """Per arm (non-private; per level clipping only and private): the setting with the best
    validation accuracy, and its test accuracy; ``gap_pts`` per level compares the private arm's
    choice with the non-private arm's. None when the runs held no validation set
    (``data.val_fraction`` 0), where every choice was made on the test images."""
    if not rows or any(r.get("non_private_val_pct") is None for r in rows):
        return None
    arms = ["non_private"] + [f"{lv}_{kind}" for lv in levels for kind in ("clip_only", "private")]
    chosen = {}
    for arm in arms:
        best = max(rows, key=lambda r, a=arm: r[f"{a}_val_pct"])
        chosen[arm] = {"server_lr": best["server_lr"], "server_momentum": best["server_momentum"],
                       "rounds": best["rounds"], "val_pct": best[f"{arm}_val_pct"],
                       "test_pct": best[f"{arm}_pct"]}
    for level in levels:
        chosen[f"{level}_private"]["gap_pts"] = (chosen["non_private"]["test_pct"]
                                                 - chosen[f"{level}_private"]["test_pct"])
    return chosen


def plot_server_opt(rows: list[dict], out: Path, levels: Sequence[str]) -> list[Path]:
    """Final accuracy per server setting: non-private, and per level clipping only and private.
    Values under the axis are drawn on its floor with their number. With validation accuracies in
    the rows, each arm's choice on them is ringed and the 3-point line hangs from the non-private
    arm's choice."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    xs = list(range(len(rows)))
    series = [("non_private_pct", "k", "o", "-", "non-private")]
    for level in levels:
        color, marker, label = LEVEL_STYLE[level]
        name = label.split(" (")[0]
        series += [(f"{level}_clip_only_pct", color, marker, ":", f"{name}, clipping only"),
                   (f"{level}_private_pct", color, marker, "-",
                    f"{name}, epsilon {rows[0]['epsilon']:g}")]
    values = [r[key] for key, *_ in series for r in rows]
    floor = math.floor(min(v for v in values if v >= 70.0) - 2) if max(values) >= 70.0 else 0.0
    width = 0.6 / len(series)
    chosen = chosen_on_validation(rows, levels)
    for i, (key, color, marker, ls, label) in enumerate(series):
        dx = (i - (len(series) - 1) / 2) * width  # settings are categories: markers, no lines
        ys = [r[key] for r in rows]
        ax.plot([x + dx for x in xs], [max(y, floor) for y in ys], ls="none", color=color,
                marker=marker, ms=7, label=label, mfc="white" if ls == ":" else color)
        for x, y in zip(xs, ys, strict=True):
            if y < floor:
                ax.annotate(f"{y:.0f}%", (x + dx, floor), textcoords="offset points",
                            xytext=(3, 5), fontsize=7, color=color, rotation=90)
        pick = (chosen or {}).get(key.removesuffix("_pct"))
        if pick is not None:  # each arm's setting chosen on the validation images
            x = next(x for x, r in zip(xs, rows, strict=True) if (r["server_lr"], r["server_momentum"],
                     r["rounds"]) == (pick["server_lr"], pick["server_momentum"], pick["rounds"]))
            ax.plot([x + dx], [max(pick["test_pct"], floor)], ls="none", marker="o", ms=13, mfc="none",
                    mec="0.4", label="chosen on validation" if key == "non_private_pct" else None)
    if chosen:  # the target, against the non-private arm's own choice
        best, how = chosen["non_private"]["test_pct"], "non-private chosen on validation"
    else:
        best, how = max(r["non_private_pct"] for r in rows), "best non-private here"
    ax.axhline(best - 3, color="k", lw=0.8, ls=":", label=f"{how} - 3 pts ({best - 3:.1f}%)")
    ax.set_ylim(floor - 0.5, max(values) + 1.5)
    ax.set_xticks(xs, [f"lr {r['server_lr']:g}\nmom {r['server_momentum']:g}\n{r['rounds']} rds"
                       for r in rows], fontsize=7)
    ax.set_xlabel("server optimiser (FedAvgM): server learning rate, server momentum, rounds")
    ax.set_ylabel("test accuracy after the last round (%)")
    ax.set_title(f"FedAvgM under DP: the same settings for every arm (seed {rows[0]['seed']}, "
                 f"epsilon {rows[0]['epsilon']:g})", fontsize=9)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out, "fed_privacy_server_opt")  # closes the figure


def replot_server_opt(out: Path) -> list[Path]:
    """Redraw ``fed_privacy_server_opt`` from its committed JSON (levels from its columns)."""
    rows = json.loads((Path(out) / "fed_privacy_server_opt.json").read_text())["rows"]
    levels = [lv for lv in LEVEL_STYLE if f"{lv}_private_pct" in rows[0]]
    return plot_server_opt(rows, Path(out), levels)
