"""What secure aggregation costs a federated run: bytes and simulated time per round, measured.

Every run shares one contact plan, one partition and the cached features; for each topology the
plain run is the config as it stands and each secure variant adds ``secagg`` (64- or 32-bit
fixed point). The protocol's messages are booked on the network
(:mod:`research.fed.secure_rounds`), so the overhead is what the contact plan makes of three more
round trips and larger masked updates, not a formula. Written: ``fed_secagg_runs.csv/json`` (one
row per run), ``fed_secagg_ledger.csv/json`` (per round), ``fed_secagg_summary.json`` (each
secure run against its topology's plain run) and ``fed_secagg.png/.pdf``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from research.fed.config import FedConfig
from research.fed.rounds import timing_only
from research.fed.runner import Setup, prepare, run, time_to_accuracy
from research.fed.scenarios import walker_scenario
from research.figures import save_figure
from research.records import write_rows

__all__ = ["VARIANTS", "plot", "summarize", "sweep"]

VARIANTS: dict[str, dict] = {
    "plain": {},
    "secagg64": {"secagg.enabled": True, "secagg.bits": 64, "secagg.frac_bits": 32},
    "secagg32": {"secagg.enabled": True, "secagg.bits": 32, "secagg.frac_bits": 16},
}
"""Changes of each variant (32-bit: half the masked bytes, 1.5e-5 resolution)."""

STYLE = {"plain": ("-", "plain FedAvg"), "secagg64": ("--", "SecAgg, 64-bit"),
         "secagg32": (":", "SecAgg, 32-bit")}
COLOR = {"ring": "tab:blue", "star": "tab:orange"}
LINKS = ("downlink", "uplink", "isl")


def sweep(base: FedConfig, out: Path, *, topologies: Sequence[str], variants: Sequence[str],
          runs: Path, target: float = 0.8, setup: Setup | None = None, command: str = "",
          cache_dir: str = "outputs/fed/cache") -> dict:
    """Run every ``(topology, variant)``; write rows, ledger, summary and the figure."""
    out, runs = Path(out), Path(runs)
    out.mkdir(parents=True, exist_ok=True)
    setup = setup or prepare(base, cache_dir=cache_dir)
    rows, ledger = [], []
    for topology in topologies:
        for variant in variants:
            name = f"{topology}_{variant}"
            cfg = base.replace(**{"name": name, "out_dir": str(runs / name),
                                  "topology": topology, **VARIANTS[variant]})
            t0 = time.time()
            res = run(cfg, setup=setup)
            wall = time.time() - t0
            rs = res.rows
            if not rs:
                raise RuntimeError(f"{name}: no round finished within the plan (see warnings)")
            n = len(rs)
            rows.append({
                "run": name, "topology": topology, "variant": variant, "rounds": n,
                "accuracy": rs[-1]["accuracy"], "sim_hours": rs[-1]["t_end_s"] / 3600,
                "round_s_mean": statistics.fmean(r["duration_s"] for r in rs),
                "round_s_median": statistics.median(r["duration_s"] for r in rs),
                "hours_to_target": _hours(time_to_accuracy(rs, target)), "target": target,
                "model_bytes_per_round": sum(r["bytes_model_exchange"] for r in rs) / n,
                "control_bytes_per_round": sum(r.get("bytes_secagg_control", 0.0)
                                               for r in rs) / n,
                "link_bytes_per_round": sum(r[f"bytes_{k}"] for r in rs for k in LINKS) / n,
                "participants_mean": statistics.fmean(r["participants"] for r in rs),
                "cohort_mean": statistics.fmean(r.get("secagg_cohort", r["participants"])
                                                for r in rs),
                "failed_rounds": sum(r["aggregation"] == "secagg_failed" for r in rs),
                "max_abs_error": max((r.get("secagg_max_abs_error") or 0.0) for r in rs),
                "wall_s_this_call": wall})
            ledger += [{"run": name, "topology": topology, "variant": variant,
                        "round": r["round"], "t_end_s": r["t_end_s"],
                        "duration_s": r["duration_s"], "accuracy": r["accuracy"],
                        "bytes_model_exchange": r["bytes_model_exchange"],
                        "bytes_secagg_control": r.get("bytes_secagg_control", 0.0),
                        "participants": r["participants"]} for r in rs]
            last = rows[-1]
            print(f"{name}: {n} rounds, acc {100 * last['accuracy']:.2f}%, "
                  f"{last['round_s_mean']:.0f} s/round, {last['sim_hours']:.2f} h "
                  f"({wall:.0f} s)", flush=True)
    summary = summarize(rows)
    summary.update({"command": command, "config": base.to_dict(),
                    "variants": {v: VARIANTS[v] for v in variants}})
    write_rows(rows, out, "fed_secagg_runs", meta={"command": command})
    write_rows(ledger, out, "fed_secagg_ledger", meta={"command": command})
    (out / "fed_secagg_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    plot(rows, ledger, out)
    return summary


def _hours(t: float | None) -> float | None:
    return None if t is None else t / 3600


def summarize(rows: list[dict]) -> dict:
    """Each secure run against the plain run of its topology: ratios of bytes and time."""
    plain = {r["topology"]: r for r in rows if r["variant"] == "plain"}
    out = []
    for r in rows:
        p = plain.get(r["topology"])
        if r["variant"] == "plain" or p is None:
            continue
        out.append({
            "topology": r["topology"], "variant": r["variant"],
            "accuracy_diff_pts": 100 * (r["accuracy"] - p["accuracy"]),
            "round_s_plain": p["round_s_mean"], "round_s_secure": r["round_s_mean"],
            "round_time_ratio": r["round_s_mean"] / p["round_s_mean"],
            "extra_s_per_round": r["round_s_mean"] - p["round_s_mean"],
            "model_bytes_ratio": r["model_bytes_per_round"] / p["model_bytes_per_round"],
            "control_bytes_per_round": r["control_bytes_per_round"],
            "control_bytes_per_satellite": r["control_bytes_per_round"]
            / max(r["cohort_mean"], 1.0),
            "exchange_bytes_ratio": (r["model_bytes_per_round"] + r["control_bytes_per_round"])
            / p["model_bytes_per_round"],
            "link_bytes_ratio": r["link_bytes_per_round"] / p["link_bytes_per_round"],
            "hours_to_target_plain": p["hours_to_target"],
            "hours_to_target_secure": r["hours_to_target"],
            "rounds_plain": p["rounds"], "rounds_secure": r["rounds"],
            "failed_rounds": r["failed_rounds"], "max_abs_error": r["max_abs_error"]})
    return {"against_plain": out}


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else (f"{seconds / 60:.0f} min" if seconds < 7200
                                                      else f"{seconds / 3600:.1f} h")


def plot(rows: list[dict], ledger: list[dict], out: Path) -> list[Path]:
    """Left: accuracy against simulated time, per topology and variant. Right: bytes each round
    puts on the links (model exchange, SecAgg control), labelled with round 1's time and the
    later rounds' mean."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.4))
    for r in rows:
        pts = [x for x in ledger if x["run"] == r["run"]]
        ls, label = STYLE[r["variant"]]
        ax.plot([x["t_end_s"] / 3600 for x in pts], [100 * x["accuracy"] for x in pts], ls=ls,
                marker=".", color=COLOR.get(r["topology"], "k"),
                label=f"{r['topology']}, {label}")
    ax.set_xscale("log")
    ax.set_xlabel("simulated time (h, log)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against simulated time (the same heads: SecAgg is exact)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    xs = range(len(rows))
    model = [r["model_bytes_per_round"] / 1e3 for r in rows]
    control = [r["control_bytes_per_round"] / 1e3 for r in rows]
    ax2.bar(xs, model, color=[COLOR.get(r["topology"], "k") for r in rows], alpha=0.6,
            label="model exchange (head, updates; masked under SecAgg)")
    ax2.bar(xs, control, bottom=model, color="0.3", label="SecAgg keys, shares, unmasking")
    for x, r, m, c in zip(xs, rows, model, control, strict=True):
        durations = [p["duration_s"] for p in ledger if p["run"] == r["run"]]
        later = statistics.fmean(durations[1:]) if len(durations) > 1 else None
        text = f"round 1: {_fmt_s(durations[0])}" + (
            "" if later is None else f"\nthen {_fmt_s(later)}")
        ax2.text(x, m + c, text, ha="center", va="bottom", fontsize=6.5)
    ax2.set_ylim(0, 1.3 * max(m + c for m, c in zip(model, control, strict=True)))
    ax2.set_xticks(list(xs), [f"{r['topology']}\n{STYLE[r['variant']][1]}" for r in rows],
                   fontsize=7)
    ax2.set_ylabel("kB sent per round (mean over rounds)")
    ax2.set_title("Bytes per round; labels: simulated round times", fontsize=9)
    ax2.legend(fontsize=7, loc="upper right")
    ax2.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    paths = save_figure(fig, out, "fed_secagg")
    plt.close(fig)
    return paths


def replot(out: Path) -> list[Path]:
    """Redraw from the committed CSV/JSON."""
    def rows_of(name: str) -> list[dict]:
        data = json.loads((Path(out) / f"{name}.json").read_text())
        return data["rows"] if isinstance(data, dict) else data

    paths = plot(rows_of("fed_secagg_runs"), rows_of("fed_secagg_ledger"), Path(out))
    if (Path(out) / "fed_secagg_regime.json").is_file():
        paths += plot_regime(rows_of("fed_secagg_regime"), Path(out))
    return paths


def _round_stats(rows: list[dict]) -> dict:
    later = rows[1:] or rows
    return {"rounds": len(rows), "round1_s": rows[0]["duration_s"],
            "round_s_later": statistics.fmean(r["duration_s"] for r in later),
            "model_bytes_later": statistics.fmean(r["bytes_model_exchange"] for r in later),
            "control_bytes_later": statistics.fmean(r.get("bytes_secagg_control", 0.0)
                                                    for r in later),
            "cohort_later": statistics.fmean(r.get("secagg_cohort", r["participants"])
                                             for r in later),
            "participants_later": statistics.fmean(r["participants"] for r in later)}


def regime(base: FedConfig, out: Path, shells: Sequence[tuple[int, int]], *,
           topologies: Sequence[str], rounds: int, duration_s: float = 86400.0,
           command: str = "", cache_dir: str = "outputs/fed/cache") -> list[dict]:
    """SecAgg's overhead against the cohort size: one Walker shell per ``(planes, per_plane)``
    (the base scenario's stations and links), plain against 64-bit SecAgg, timing and bytes only
    (every update is the head: SecAgg's head equals plain FedAvg's, which :func:`sweep` measures
    with the real numerics). Rounds after the first (features reused) are the steady state.
    Writes ``fed_secagg_regime.{csv,json,png,pdf}``."""
    import tempfile
    import warnings


    out = Path(out)
    rows = []
    for planes, per in shells:
        cfg = base.replace(scenario=walker_scenario(base, planes, per, duration_s),
                           **{"train.rounds": rounds})
        setup = prepare(cfg, cache_dir=cache_dir)
        for topology in topologies:
            got = {}
            for variant in ("plain", "secagg64"):
                with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    c = cfg.replace(**{"topology": topology, "out_dir": tmp,
                                       **VARIANTS[variant]})
                    ledger = run(c, setup=setup, resume=False, trainer=timing_only,
                                 secure_trainer=lambda rnd: rnd.head).rows
                if not ledger:
                    raise RuntimeError(f"{planes}x{per} shell, {topology} {variant}: no round "
                                       f"finished within the {duration_s / 3600:g}-h plan")
                got[variant] = _round_stats(ledger)
            p, s = got["plain"], got["secagg64"]
            rows.append({
                "satellites": planes * per, "planes": planes, "sats_per_plane": per,
                "topology": topology, "rounds_plain": p["rounds"], "rounds_secure": s["rounds"],
                "round1_s_plain": p["round1_s"], "round1_s_secure": s["round1_s"],
                "round_s_plain": p["round_s_later"], "round_s_secure": s["round_s_later"],
                "round_time_ratio": s["round_s_later"] / p["round_s_later"],
                "cohort": s["cohort_later"], "participants_plain": p["participants_later"],
                "participants_secure": s["participants_later"],
                "control_bytes_per_satellite": s["control_bytes_later"]
                / max(s["cohort_later"], 1.0),
                "model_bytes_ratio": s["model_bytes_later"] / p["model_bytes_later"],
                "exchange_bytes_ratio": (s["model_bytes_later"] + s["control_bytes_later"])
                / p["model_bytes_later"]})
            r = rows[-1]
            print(f"{r['satellites']} satellites, {topology}: {r['round_s_plain']:.0f} -> "
                  f"{r['round_s_secure']:.0f} s/round, {r['control_bytes_per_satellite']:.0f} "
                  "B control per satellite", flush=True)
    write_rows(rows, out, "fed_secagg_regime", meta={"command": command, "rounds": rounds})
    plot_regime(rows, out)
    return rows


def plot_regime(rows: list[dict], out: Path) -> list[Path]:
    """Left: round time with and without SecAgg against the constellation size. Right: bytes a
    round exchanges with SecAgg over plain FedAvg's."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for topology in sorted({r["topology"] for r in rows}):
        rs = sorted((r for r in rows if r["topology"] == topology), key=lambda r: r["satellites"])
        ks = [r["satellites"] for r in rs]
        c = COLOR.get(topology, "k")
        ax.plot(ks, [r["round_s_plain"] for r in rs], "o-", color=c,
                label=f"{topology}, plain FedAvg")
        ax.plot(ks, [r["round_s_secure"] for r in rs], "s--", color=c,
                label=f"{topology}, SecAgg 64-bit")
        ax2.plot(ks, [r["exchange_bytes_ratio"] for r in rs], "s--", color=c,
                 label=f"{topology}: (masked model + control) / plain model bytes")
    ks = sorted({r["satellites"] for r in rows})
    for a in (ax, ax2):
        a.set_xscale("log", base=2)
        a.set_xticks(ks, [str(k) for k in ks])
        a.set_xlabel("satellites in the round (Walker shells, same stations)")
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("simulated round time, rounds 2+ (s)")
    ax.set_title("Round time (features reused): SecAgg's 3 extra round trips wait for passes "
                 "on the star", fontsize=8)
    ax2.axhline(1, color="k", lw=0.8)
    ax2.set_ylabel("bytes exchanged per round / plain FedAvg's")
    ax2.set_title("Bytes: control grows with the cohort (one share box per member)", fontsize=9)
    fig.tight_layout()
    paths = save_figure(fig, out, "fed_secagg_regime")
    plt.close(fig)
    return paths
