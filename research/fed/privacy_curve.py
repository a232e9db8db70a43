"""Accuracy against epsilon: federated fine-tuning with and without differential privacy.

Every run shares one contact plan, one data partition (``data.seed``) and the cached features;
seeds (``train.seed``) change the local SGD order and the privacy noise. The non-private runs
are the config as it stands (image-weighted FedAvg); each private run adds ``privacy.level`` and
a target ``epsilon`` at ``delta`` (the noise calibrated to it by the accountant) and its level's
clipping norm; each level also runs clipping only (no noise, ``target_epsilon`` 0 in the rows)
so the gap to non-private splits into what clipping and unweighted averaging cost and what the
noise costs. Written: ``fed_privacy_runs.csv/json`` (one row per run), the per-round ledger
``fed_privacy_ledger.csv/json``, ``fed_privacy_summary.json`` (mean and std per level and
epsilon, the gap to the non-private mean) and ``fed_privacy.png/.pdf``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from research.fed.clients import client_update
from research.fed.config import FedConfig
from research.fed.privacy import Privacy
from research.fed.runner import Setup, prepare, run
from research.fed.scenarios import walker_scenario
from research.figures import save_figure
from research.records import write_rows

__all__ = ["plot", "summarize_runs", "sweep"]

LEVEL_STYLE = {"satellite": ("tab:red", "o", "satellite-level (DP-FedAvg, whole shard)"),
               "image": ("tab:blue", "s", "image-level (DP-SGD on board)")}


CLIP_ONLY = 0.0
"""``target_epsilon`` of a level's clipping-only runs: its clipping and weighting, no noise
(``noise_multiplier`` 1e-9), to split the gap to non-private into clipping and noise."""


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _run_name(level: str, epsilon: float | None, seed: int) -> str:
    if epsilon is None:
        return f"none_seed{seed}"
    return f"{level}_cliponly_seed{seed}" if epsilon == CLIP_ONLY else \
        f"{level}_eps{epsilon:g}_seed{seed}"


def sweep(base: FedConfig, out: Path, *, levels: Sequence[str], epsilons: Sequence[float],
          seeds: Sequence[int], clips: dict[str, float], runs: Path, setup: Setup | None = None,
          overrides: dict[str, dict] | None = None, command: str = "",
          cache_dir: str = "outputs/fed/cache") -> dict:
    """Run the non-private config and every ``(level, epsilon, seed)``; write rows and figure.

    ``overrides[level]`` are extra ``"section.key"`` changes of that level's private runs (e.g. a
    larger batch for DP-SGD), recorded in the summary.
    """
    out, runs = Path(out), Path(runs)
    out.mkdir(parents=True, exist_ok=True)
    setup = setup or prepare(base, cache_dir=cache_dir)
    overrides = overrides or {}
    grid = [("none", None, s) for s in seeds]
    grid += [(lv, e, s) for lv in levels for e in [CLIP_ONLY, *epsilons] for s in seeds]
    rows, ledger = [], []
    for level, eps, seed in grid:
        name = _run_name(level, eps, seed)
        changes = {"name": name, "out_dir": str(runs / name), "train.seed": seed}
        if eps is not None:
            budget = ({"privacy.noise_multiplier": 1e-9} if eps == CLIP_ONLY
                      else {"privacy.epsilon": eps})
            changes.update({"privacy.level": level, "privacy.clip": clips[level], **budget,
                            **overrides.get(level, {})})
        cfg = base.replace(**changes)
        t0 = time.time()
        res = run(cfg, setup=setup)
        wall = time.time() - t0
        last = res.rows[-1]
        rows.append({"run": name, "level": level, "target_epsilon": eps, "seed": seed,
                     "clip": clips.get(level) if eps is not None else None,
                     "accuracy": last["accuracy"], "val_accuracy": last.get("val_accuracy"),
                     "epsilon": last.get("epsilon"), "delta": last.get("delta"),
                     "noise_multiplier": last.get("dp_noise_multiplier"),
                     "rounds": len(res.rows), "sim_hours": last["t_end_s"] / 3600,
                     "bytes_model_exchange": sum(r["bytes_model_exchange"] for r in res.rows),
                     "wall_s_this_call": wall})
        ledger += [{"run": name, "level": level, "target_epsilon": eps, "seed": seed,
                    "round": r["round"], "t_end_s": r["t_end_s"], "accuracy": r["accuracy"],
                    "val_accuracy": r.get("val_accuracy"), "epsilon": r.get("epsilon")}
                   for r in res.rows]
        print(f"{name}: acc {100 * last['accuracy']:.2f}%  eps {last.get('epsilon')}  "
              f"({wall:.0f} s)", flush=True)
    summary = summarize_runs(rows)
    summary["local_update_cost"] = local_update_cost(base, setup, levels, clips, overrides)
    summary.update({"command": command, "clips": clips, "overrides": overrides,
                    "config": base.to_dict()})
    write_rows(rows, out, "fed_privacy_runs", meta={"command": command})
    write_rows(ledger, out, "fed_privacy_ledger", meta={"command": command})
    (out / "fed_privacy_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    plot(rows, ledger, out)
    return summary


def local_update_cost(base: FedConfig, setup: Setup, levels: Sequence[str],
                      clips: dict[str, float], overrides: dict[str, dict]) -> dict:
    """Measured CPU seconds of one round of every satellite's local update, per level, and the
    ratio to the non-private update (what DP costs on board; epsilon 8's noise)."""
    def seconds(cfg: FedConfig) -> float:
        privacy = Privacy(cfg.privacy, cfg.train)  # calibrates satellite-level noise
        active = [(i, c) for i, c in enumerate(setup.clients) if c.n > 0]
        if privacy.level == "image":  # calibration is a one-off, not part of a round's cost
            for _, c in active:
                privacy.image_plan(c.n)
        t0 = time.perf_counter()
        for i, c in active:
            client_update(setup.template, setup.data, c, i, setup.initial, cfg.train, 1,
                          privacy, cohort=len(active))
        return time.perf_counter() - t0

    plain = seconds(base)
    out = {"none": {"cpu_s_per_round": plain, "ratio": 1.0}}
    for level in levels:
        cfg = base.replace(**{"privacy.level": level, "privacy.epsilon": 8.0,
                              "privacy.clip": clips[level], **overrides.get(level, {})})
        s = seconds(cfg)
        out[level] = {"cpu_s_per_round": s, "ratio": s / plain}
    return out


def summarize_runs(rows: list[dict]) -> dict:
    """Mean and std over seeds per (level, epsilon); each private group's gap to non-private."""
    groups: dict[tuple[str, float | None], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["level"], r["target_epsilon"]), []).append(r)

    def stats(rs: list[dict], key: str) -> tuple[float, float]:
        v = [100 * r[key] for r in rs]
        return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)

    base = groups.get(("none", None))
    base_mean = stats(base, "accuracy")[0] if base else None
    out = {"non_private": None, "private": [], "clip_only": []}
    for (level, eps), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        mean, std = stats(rs, "accuracy")
        entry = {"level": level, "target_epsilon": eps, "seeds": len(rs),
                 "accuracy_mean_pct": mean, "accuracy_std_pct": std,
                 # on the validation images (data.val_fraction), to choose settings by
                 "val_accuracy_mean_pct": (stats(rs, "val_accuracy")[0]
                                           if all(r.get("val_accuracy") is not None for r in rs) else None),
                 "bytes_model_exchange_mean": statistics.fmean(r["bytes_model_exchange"]
                                                               for r in rs),
                 "sim_hours_mean": statistics.fmean(r["sim_hours"] for r in rs)}
        if level == "none":
            out["non_private"] = entry
            continue
        if eps == CLIP_ONLY:
            if base_mean is not None:
                entry["gap_pts"] = base_mean - mean
            out["clip_only"].append(entry)
            continue
        entry["epsilon_spent_max"] = max(r["epsilon"] for r in rs)
        entry["noise_multiplier"] = rs[0]["noise_multiplier"]
        if base_mean is not None:
            entry["gap_pts"] = base_mean - mean
        out["private"].append(entry)
    return out


def plot(rows: list[dict], ledger: list[dict], out: Path) -> list[Path]:
    """Left: final accuracy against epsilon (mean +- std over seeds) with the non-private band.
    Right: accuracy per round at epsilon 8 (or the largest run) against the non-private run."""
    s = summarize_runs(rows)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    base = s["non_private"]
    if base:
        m, sd = base["accuracy_mean_pct"], base["accuracy_std_pct"]
        for a in (ax,):
            a.axhspan(m - sd, m + sd, color="0.85")
            a.axhline(m, color="k", lw=1, label=f"non-private {m:.1f}%")
            a.axhline(m - 3, color="k", lw=0.8, ls=":", label="non-private - 3 pts")
    for level, (color, marker, label) in LEVEL_STYLE.items():
        pts = [p for p in s["private"] if p["level"] == level]
        if not pts:
            continue
        for c in s["clip_only"]:
            if c["level"] == level:
                ax.axhline(c["accuracy_mean_pct"], color=color, lw=1, ls="--",
                           label=f"{label.split(' (')[0]}, clipping only (no noise) "
                                 f"{c['accuracy_mean_pct']:.1f}%")
        ax.errorbar([p["target_epsilon"] for p in pts], [p["accuracy_mean_pct"] for p in pts],
                    yerr=[p["accuracy_std_pct"] for p in pts], color=color, marker=marker,
                    capsize=3, label=f"{label}, {_seeds(pts[0]['seeds'])}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("target epsilon at delta = 1e-5 over all rounds (satellite: zero-out adjacency)")
    ax.set_ylabel("test accuracy after the last round (%)")
    ax.set_title("Accuracy against the privacy budget")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    eps_all = sorted({r["target_epsilon"] for r in rows if r["target_epsilon"]})
    show = 8.0 if 8.0 in eps_all else (eps_all[-1] if eps_all else None)
    curves = {"none": ("k", "non-private")}
    curves.update({lv: (c, lab.split(" (")[0]) for lv, (c, _, lab) in LEVEL_STYLE.items()})
    for level, (color, label) in curves.items():
        want = None if level == "none" else show
        by_round: dict[int, list[float]] = {}
        for r in ledger:
            if r["level"] == level and r["target_epsilon"] == want:
                by_round.setdefault(r["round"], []).append(100 * r["accuracy"])
        if by_round:
            xs = sorted(by_round)
            ax2.plot(xs, [statistics.fmean(by_round[x]) for x in xs], color=color,
                     label=label + ("" if want is None else f", epsilon {want:g}"))
    ax2.set_xlabel("round")
    ax2.set_ylabel("test accuracy (%), mean over seeds")
    ax2.set_title("Convergence (no extra bytes: the cost is rounds)")
    ax2.legend(fontsize=8, loc="lower right")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    paths = save_figure(fig, out, "fed_privacy")
    plt.close(fig)
    return paths


def replot(out: Path) -> list[Path]:
    """Redraw from the committed CSV/JSON."""
    rows = json.loads((Path(out) / "fed_privacy_runs.json").read_text())
    ledger = json.loads((Path(out) / "fed_privacy_ledger.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    ledger = ledger["rows"] if isinstance(ledger, dict) else ledger
    return plot(rows, ledger, Path(out))


def regime(base: FedConfig, out: Path, shells: Sequence[tuple[int, int]], *, epsilon: float,
           seeds: Sequence[int], clip: float, runs: Path, command: str = "",
           cache_dir: str = "outputs/fed/cache") -> list[dict]:
    """Satellite-level DP at ``epsilon`` against the number of satellites sharing the same data:
    the noise on the mean update falls as ``1/K``. One sweep per Walker shell (non-private,
    clipping only, ``epsilon``); writes ``fed_privacy_regime.{csv,json,png,pdf}``."""
    out = Path(out)
    rows = []
    for planes, per in shells:
        k = planes * per
        cfg = base.replace(scenario=walker_scenario(base, planes, per))
        s = sweep(cfg, out / f"shell_{planes}x{per}", levels=["satellite"], epsilons=[epsilon],
                  seeds=seeds, clips={"satellite": clip}, runs=Path(runs) / f"{planes}x{per}",
                  command=command, cache_dir=cache_dir)
        (dp,), (co,) = s["private"], s["clip_only"]
        rows.append({"satellites": k, "planes": planes, "sats_per_plane": per,
                     "epsilon": epsilon, "seeds": len(seeds),
                     "non_private_pct": s["non_private"]["accuracy_mean_pct"],
                     "clip_only_pct": co["accuracy_mean_pct"], "private_pct": dp["accuracy_mean_pct"],
                     "private_std_pct": dp["accuracy_std_pct"], "gap_pts": dp["gap_pts"],
                     "noise_gap_pts": co["accuracy_mean_pct"] - dp["accuracy_mean_pct"],
                     "noise_multiplier": dp["noise_multiplier"],
                     "noise_std_on_mean_over_clip": dp["noise_multiplier"] / k})
        print(f"{k} satellites: gap {dp['gap_pts']:.2f} pts", flush=True)
    write_rows(rows, out, "fed_privacy_regime", meta={"command": command})
    plot_regime(rows, out)
    return rows


def plot_regime(rows: list[dict], out: Path) -> list[Path]:
    """Points below non-private at epsilon ``rows[0]['epsilon']`` against the constellation size,
    split into clipping and noise, with the 3-point line."""
    fig, ax = plt.subplots(figsize=(5.6, 4))
    ks = [r["satellites"] for r in rows]
    ax.plot(ks, [r["gap_pts"] for r in rows], "o-", color="tab:red",
            label=f"DP-FedAvg at epsilon {rows[0]['epsilon']:g} (total)")
    ax.plot(ks, [r["noise_gap_pts"] for r in rows], "s--", color="tab:orange",
            label="of which noise (vs clipping only)")
    ax.plot(ks, [r["gap_pts"] - r["noise_gap_pts"] for r in rows], "^:", color="tab:gray",
            label="of which clipping + unweighted mean")
    ax.axhline(3, color="k", lw=0.8, ls=":", label="3 points")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("satellites sharing the same training images (Walker shells)")
    ax.set_ylabel("points below non-private (same partition)")
    ax.set_title("Satellite-level DP: the gap against constellation size "
                 f"({_seeds(rows[0]['seeds'])})", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths = save_figure(fig, out, "fed_privacy_regime")
    plt.close(fig)
    return paths
