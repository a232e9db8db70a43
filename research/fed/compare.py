"""Compare federated schemes on one scenario: accuracy against simulated wall-clock time.

Every scheme and ablation (``VARIANTS``) runs on the same plan, data split and cached features;
:func:`compare` writes the ledgers (CSV/JSON), ``fed_time.png/.pdf`` and ``fed_time_caption.md``
and returns the time-to-target ratios (collaborative time to reach the on-board final accuracy
within 1 point, over the on-board time to reach it). Used by ``scripts/fig_fed_time.py`` and
``satedge demo``; runs resume from their per-round checkpoints.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

from devices import get_device
from research.fed.config import FedConfig, FedConfigError
from research.fed.ledger import LINK_TYPES, summarize
from research.fed.runner import prepare, run, time_to_accuracy
from research.figures import save_figure
from research.orbit.contact_plan import ContactPlan
from research.records import write_rows

VARIANTS: dict[str, dict] = {
    "collaborative": {},
    "centralised": {"scheme": "centralised", "topology": "star"},
    "onboard": {"scheme": "onboard"},
    "onboard_star": {"scheme": "onboard", "topology": "star"},
    "onboard_gossip": {"scheme": "onboard", "topology": "gossip"},
    "collab_gossip": {"topology": "gossip"},
    "collab_no_sharing": {"comm.intra_orbit_sharing": False},
    "collab_no_maxflow": {"comm.maxflow": False},
    "collab_int8": {"model.link": "int8"},
    "collab_int8_both": {"model.link": "int8", "model.gradient_link": "int8"},
    "collab_no_ring": {"topology": "star"},
    "collaborative_recompute": {"comm.reuse_features": False},
    "onboard_recompute": {"scheme": "onboard", "comm.reuse_features": False},
    "onboard_deadline_1h": {"scheme": "onboard", "comm.round_deadline_s": 3600.0},
    "collaborative_recompute_deadline_1h": {"comm.reuse_features": False,
                                            "comm.round_deadline_s": 3600.0},
    "onboard_recompute_deadline_1h": {"scheme": "onboard", "comm.reuse_features": False,
                                      "comm.round_deadline_s": 3600.0},
}
def applicable_variants(base: FedConfig, names: Sequence[str]) -> list[str]:
    """The variants of ``names`` the base config can take (``collab_int8_both`` needs a trained
    encoder, for one): a default sweep skips the others instead of failing half-way."""
    out = []
    for name in names:
        try:
            base.replace(**VARIANTS[name])
        except FedConfigError:
            continue
        out.append(name)
    return out


QUICK_VARIANTS = ("collaborative", "centralised", "onboard", "onboard_star", "collab_no_sharing",
                  "collab_no_maxflow", "collab_no_ring")
PAIRS = (("collaborative", "onboard"), ("collaborative", "onboard_star"),
         ("collaborative_recompute", "onboard_recompute"),
         ("collaborative", "onboard_deadline_1h"),
         ("collaborative_recompute_deadline_1h", "onboard_recompute_deadline_1h"),
         ("collaborative", "centralised"), ("collaborative", "onboard_gossip"),
         ("collab_gossip", "onboard_gossip"))
"""(collaborative run, baseline run) pairs whose time-to-target ratio is reported."""


def ratio(collab: list[dict], onboard: list[dict], tol: float = 0.01) -> dict:
    """Collaborative time to reach a baseline's final accuracy (within ``tol``) over the
    baseline's (keys say ``onboard`` for the baseline, whichever it is)."""
    target = onboard[-1]["accuracy"] - tol
    t_c, t_o = time_to_accuracy(collab, target), time_to_accuracy(onboard, target)
    return {"target_accuracy": target, "t_collaborative_s": t_c, "t_onboard_s": t_o,
            "t_onboard_total_s": onboard[-1]["t_end_s"],
            "ratio": None if t_c is None or not t_o else t_c / t_o,
            "ratio_vs_onboard_total": None if t_c is None else t_c / onboard[-1]["t_end_s"]}


def best_onboard(results: dict[str, list[dict]]) -> str | None:
    """The on-board run (every feature reused, no deadline: ``onboard`` over each topology) that
    reaches its own final accuracy (- 1 pt) first: the baseline the headline ratio uses."""
    times = {}
    for name in ("onboard", "onboard_star", "onboard_gossip"):
        rows = results.get(name)
        if rows:
            t = time_to_accuracy(rows, rows[-1]["accuracy"] - 0.01)
            times[name] = math.inf if t is None else t
    return min(times, key=times.get) if times else None


HEADLINE = ("collaborative", "centralised", "onboard", "onboard_star", "collab_no_ring")
"""Runs of the figure's left panel: the scheme, the three baselines, no ISLs."""

_TIME_TICKS = ((1, "1 s"), (60, "1 min"), (3600, "1 h"), (86400, "1 d"), (7 * 86400, "1 wk"))


def plot(results: dict[str, list[dict]], out: Path,
         repeats: dict[str, dict[int, list[dict]]] | None = None) -> list[Path]:
    """Accuracy after each round against the simulated time it ended, on a log time axis (runs
    from seconds to days on one axis; no run hides at zero). Left: the headline runs; right:
    the ablations. Each run has its own colour and marker, so runs that end together stay
    visible; ``repeats`` (other seeds of a run) are drawn thin in the run's colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [[n for n in HEADLINE if n in results], [n for n in results if n not in HEADLINE]]
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(6.2 * len(groups), 4.2), sharey=True,
                             squeeze=False)
    markers = "osD^vP*Xh<>"
    colours = [*plt.get_cmap("tab10").colors, *plt.get_cmap("Dark2").colors]  # 18, no repeats
    order = list(results)
    t_all = [r["t_end_s"] for rows in results.values() for r in rows if r["t_end_s"] > 0]
    t_all += [r["t_end_s"] for runs in (repeats or {}).values() for rows in runs.values()
              for r in rows if r["t_end_s"] > 0]
    lo, hi = min(t_all) / 2, max(t_all) * 2
    for ax, names in zip(axes[0], groups, strict=True):
        for name in names:
            rows = results[name]
            i = order.index(name)
            t = [r["t_end_s"] for r in rows]
            acc = [100 * r["accuracy"] for r in rows]
            for other in (repeats or {}).get(name, {}).values():
                ax.step([r["t_end_s"] for r in other], [100 * r["accuracy"] for r in other],
                        where="post", color=colours[i % len(colours)], lw=0.7, alpha=0.45)
            style = "--" if "onboard" in name else (":" if name == "centralised" else "-")
            ax.step(t, acc, where="post", color=colours[i % len(colours)],
                    lw=1.6 if name in HEADLINE else 1, ls=style, marker=markers[i % len(markers)],
                    ms=3, markevery=max(len(t) // 6, 1), label=f"{name} ({_h(t[-1])})")
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ticks = [(v, s) for v, s in _TIME_TICKS if lo <= v <= hi]
        ax.set_xticks([v for v, _ in ticks], [s for _, s in ticks])
        ax.minorticks_off()
        ax.set_xlabel("simulated wall-clock time at the end of each round (log)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                  title="run (time of its last round)",
                  title_fontsize=7)
    axes[0][0].set_ylabel("test accuracy after the round (%)")
    axes[0][0].set_title("scheme and baselines (thin: other seeds; identical runs overlap: see "
                         "the legend times)",
                         fontsize=9)
    if len(groups) > 1:
        axes[0][1].set_title("ablations", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, "fed_time")


def replot(out: Path) -> list[Path]:
    """Redraw ``fed_time.png/.pdf`` from the ``fed_time_ledger.csv`` a run wrote in ``out``."""
    import csv

    by_seed: dict[str, dict[int, list[dict]]] = {}
    with open(Path(out) / "fed_time_ledger.csv") as fh:
        for row in csv.DictReader(fh):
            point = {"t_end_s": float(row["t_end_s"]), "accuracy": float(row["accuracy"])}
            by_seed.setdefault(row["run"], {}).setdefault(int(row.get("seed") or 0), []).append(
                point)
    first = min(s for runs in by_seed.values() for s in runs)  # compare's headline seed
    results = {n: runs[first] for n, runs in by_seed.items() if first in runs}
    repeats = {n: {s: rows for s, rows in runs.items() if s != first}
               for n, runs in by_seed.items()}
    return plot(results, Path(out), repeats)


def caption(cfg, setup, results: dict, ratios: dict, summaries: dict, command: str,
            over_seeds: dict | None = None) -> str:
    plan = setup.plan
    s = plan.summary()
    sat_hw, gnd_hw = get_device(cfg.profiles.satellite), get_device(cfg.profiles.ground)
    trained = ("head" if cfg.model.trainable == "head" else
               f"patch embedding + LoRA rank {cfg.model.lora_rank} + head (on board, or by split "
               f"learning: {setup.costs.embed_update_bytes} bytes of embedding per collaborative "
               f"update, activations and gradients across the cut every step)")
    lines = [
        "# Federated fine-tuning: accuracy vs simulated wall-clock time",
        "",
        f"Scenario: {plan.meta.get('scenario', '')}: {s['satellites']} satellites "
        f"({len({plan.plane_of(x) for x in plan.satellites})} planes, +Grid optical ISLs), "
        f"stations {', '.join(plan.stations)}; {s['horizon_s'] / 3600:.0f} h at "
        f"{s['step_s']:.0f} s; mean downlink {s['mean_downlink_rate_bps'] / 1e6:.0f} Mbit/s.",
        f"Model: {cfg.model.backbone} from {cfg.model.weights}, trained part: {trained} "
        f"({setup.costs.update_bytes} bytes per update); cut {setup.costs.cut_bytes:.0f} bytes "
        f"per image ({cfg.model.link}) against {setup.costs.image_bytes:,.0f} bytes for the raw "
        f"image (8 bits per pixel and band). Data: {len(setup.data.train_y)} training / "
        f"{len(setup.data.test_y)} test images, {cfg.data.describe_partition()}.",
        f"Profiles: satellite {sat_hw.name} ({sat_hw.effective_flops / 1e9:.0f} GFLOP/s "
        f"sustained, {sat_hw.power_w} W); ground {gnd_hw.name} "
        f"({gnd_hw.effective_flops / 1e12:.0f} TFLOP/s, {gnd_hw.power_w} W). "
        f"Local: {cfg.train.local_epochs} epoch(s), SGD lr {cfg.train.lr}.",
        "",
        "| run | rounds | final acc | sim hours | "
        + " | ".join(f"{k} MB" for k in LINK_TYPES)
        + " | on-board compute J/sat | on-board transmit J/sat | ground J |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    n_sat = len(plan.satellites)
    for name, sm in summaries.items():
        b = sm["bytes"]
        lines.append(
            f"| {name} | {sm['rounds']} | {100 * sm['final_accuracy']:.1f}% | "
            f"{sm['sim_hours']:.2f} | " + " | ".join(f"{b[k] / 1e6:.2f}" for k in LINK_TYPES)
            + f" | {sm['energy_onboard_compute_j'] / n_sat:.2f} | "
              f"{sm['energy_onboard_transmit_j'] / n_sat:.2f} | {sm['energy_ground_j']:.1f} |")
    lines.append("")
    for pair, r in ratios.items():
        first, baseline = pair.split(" / ")
        lines.append(f"Time-to-target ratio ({pair}): {baseline}'s final accuracy "
                     f"{100 * (r['target_accuracy'] + 0.01):.1f}% - 1 pt reached by {first} "
                     f"in {_h(r['t_collaborative_s'])}, by {baseline} in {_h(r['t_onboard_s'])}: "
                     f"**ratio {_fmt(r['ratio'])}** (vs {baseline}'s whole run "
                     f"{_h(r['t_onboard_total_s'])}: {_fmt(r['ratio_vs_onboard_total'])}); "
                     "target <= 0.33, aim 0.25.")
    for pair, r in (over_seeds or {}).items():
        lines.append(f"Over seeds {r['seeds']} ({pair}; seed s > 0 deals the images and orders "
                     f"the local SGD with seed s): ratio {_fmt(r['ratio_mean'])} +- "
                     f"{_fmt(r['ratio_std'])} (min {_fmt(r['ratio_min'])}, max "
                     f"{_fmt(r['ratio_max'])}); {pair.split(' / ')[0]} "
                     f"{_h(r['t_collaborative_mean_s'])}, {pair.split(' / ')[1]} "
                     f"{_h(r['t_onboard_mean_s'])} on average.")
    lines.append("")
    lines.append("Every scheme may use every topology (`onboard`: ring all-reduce per plane and "
                 "across planes, as collaborative; `onboard_star`: FedAvg through the stations "
                 "only; `onboard_gossip` / `collab_gossip`: gossip averaging over ISLs to "
                 "comm.gossip_tol, no ground; `collab_no_ring`: collaborative through the "
                 "stations). The headline "
                 "ratio is against the best on-board run. `centralised`: no federation, every "
                 "satellite downlinks its raw images (same scheduler and options as the "
                 "embeddings) and the ground trains the head on what has arrived, round r "
                 "once r/R of the satellites' data is down (research/fed/centralised.py). "
                 "`collab_int8`: the tokens cross the cut through the int8 link (per-token "
                 "scale, zlib; the head trains on features of the decoded tokens); "
                 "`collab_int8_both`: under split learning the cut's gradient comes back up "
                 "through int8 too.")
    lines.append(f"Command: `{command}`")
    lines.append("")
    lines.append("reuse_features: a frozen encoder lets satellites keep round-1 features; the "
                 "`_recompute` runs re-embed (collaborative: re-downlink, re-encode, re-uplink) "
                 "or re-encode on board every round. Time parts per round (critical path) are in "
                 "the ledger. `_deadline_1h`: partial participation (satellites not done "
                 "within 1 h of the round start are dropped from that round). Ground J: the "
                 "whole run's ground compute energy (the encoder).")
    return "\n".join(lines) + "\n"


def _h(t: float | None) -> str:
    """A simulated duration in seconds under two minutes, else in hours."""
    if t is None:
        return "never"
    return f"{t:.3g} s" if t < 120 else f"{t / 3600:.3g} h"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def seed_changes(seed: int) -> dict:
    """Config changes of repetition ``seed``: the partition and the local SGD order (0: the base
    run; the features and the test set stay those of ``data.seed``)."""
    return {} if seed == 0 else {"data.partition_seed": seed, "train.seed": seed}


def _spread(values: list[float | None]) -> dict:
    import statistics

    known = [v for v in values if v is not None]
    if not known:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": statistics.fmean(known),
            "std": statistics.stdev(known) if len(known) > 1 else 0.0,
            "min": min(known), "max": max(known)}


def ratios_over_seeds(by_seed: dict[str, dict[int, list[dict]]],
                      pairs: list[tuple[str, str]]) -> dict:
    """Each pair's time-to-target ratio per seed (both runs of that seed), with mean, std and
    range (seeds where a run never reaches the target are left out of the statistics)."""
    out = {}
    for first, baseline in pairs:
        seeds = sorted(set(by_seed.get(first, {})) & set(by_seed.get(baseline, {})))
        if len(seeds) < 2:
            continue
        per = [ratio(by_seed[first][s], by_seed[baseline][s]) for s in seeds]
        r, tc, to = (_spread([p[k] for p in per]) for k in ("ratio", "t_collaborative_s",
                                                             "t_onboard_s"))
        out[f"{first} / {baseline}"] = {
            "seeds": seeds, "ratio": [p["ratio"] for p in per],
            "t_collaborative_s": [p["t_collaborative_s"] for p in per],
            "t_onboard_s": [p["t_onboard_s"] for p in per],
            **{f"ratio_{k}": v for k, v in r.items()},
            "t_collaborative_mean_s": tc["mean"], "t_onboard_mean_s": to["mean"]}
    return out


def compare(base: FedConfig, out: Path, names: list[str] | tuple[str, ...], runs: Path, *,
            command: str, plan: ContactPlan | None = None,
            cache_dir: str = "outputs/fed/cache", seeds: tuple[int, ...] = (0,),
            seeded: tuple[str, ...] | None = None) -> dict:
    """Run ``names`` (keys of ``VARIANTS``) from ``base``; write the figure, ledger and caption.

    The smallest of ``seeds`` is the headline run of every name; the others repeat the names in
    ``seeded`` (default: all of them; :func:`seed_changes`), drawn thin and summarised as mean
    and spread."""
    out = Path(out)
    runs = Path(runs)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    setup = prepare(base, plan=plan, cache_dir=cache_dir)
    print(f"prepared in {time.time() - t0:.0f} s: {len(setup.clients)} satellites, "
          f"{len(setup.data.train_y)} training images")
    results, summaries, all_rows = {}, {}, []
    by_seed: dict[str, dict[int, list[dict]]] = {}
    seeds = tuple(sorted(set(seeds)))
    first = seeds[0]
    for seed in seeds:
        todo = [n for n in names if seed == first or seeded is None or n in seeded]
        if not todo:
            continue
        s_base = base.replace(**seed_changes(seed))
        setups = {repr(base.model): setup if seed == 0 else
                  prepare(s_base, plan=setup.plan, cache_dir=cache_dir)}
        for name in todo:
            tag = name if seed == 0 else f"{name}_seed{seed}"
            cfg = s_base.replace(name=tag, out_dir=str(runs / tag), **VARIANTS[name])
            if repr(cfg.model) not in setups:  # another link at the cut: its own features
                setups[repr(cfg.model)] = prepare(cfg, plan=setup.plan, cache_dir=cache_dir)
            t1 = time.time()
            res = run(cfg, setup=setups[repr(cfg.model)])
            for r in res.rows:
                r["accuracy_round0"] = 100 * res.initial_accuracy
                all_rows.append({"run": name, "seed": seed, **r})
            by_seed.setdefault(name, {})[seed] = res.rows
            if seed == first:
                results[name] = res.rows
                summaries[name] = summarize(res.rows, res.energy, res.initial_accuracy)
            sm = summarize(res.rows, res.energy, res.initial_accuracy)
            print(f"{tag}: {len(res.rows)} rounds, acc {100 * sm['final_accuracy']:.1f}%, "
                  f"{sm['sim_hours']:.2f} sim h ({time.time() - t1:.0f} s)")
    ratios = {}
    for collab, onboard in PAIRS:
        if results.get(collab) and results.get(onboard):
            ratios[f"{collab} / {onboard}"] = ratio(results[collab], results[onboard])
    best = best_onboard(results)
    if best is not None and results.get("collaborative"):
        ratios[f"collaborative / best on-board ({best})"] = ratio(results["collaborative"],
                                                                 results[best])
    over_seeds = ratios_over_seeds(by_seed, [*PAIRS, *(
        [("collaborative", best)] if best is not None else [])])
    write_rows(all_rows, out, "fed_time_ledger", meta={"config": base.to_dict()})
    (out / "fed_time_summary.json").write_text(json.dumps(
        {"ratios": ratios, "ratios_over_seeds": over_seeds, "runs": summaries,
         "costs": setup.costs.as_dict(), "config": base.to_dict()}, indent=1, default=str))
    plot({k: v for k, v in results.items() if v}, out,
         {n: {s: rows for s, rows in per.items() if s != first} for n, per in by_seed.items()})
    (out / "fed_time_caption.md").write_text(
        caption(base, setup, results, ratios, summaries, command, over_seeds))
    for pair, r in ratios.items():
        print(f"ratio {pair}: {_fmt(r['ratio'])} (collaborative {_h(r['t_collaborative_s'])}, "
              f"on-board {_h(r['t_onboard_s'])}, target acc {100 * r['target_accuracy']:.1f}%)")
    for pair, r in over_seeds.items():
        print(f"ratio {pair} over seeds {r['seeds']}: {_fmt(r['ratio_mean'])} +- "
              f"{_fmt(r['ratio_std'])}")
    print(f"wrote {out} in {time.time() - t0:.0f} s")
    return ratios
