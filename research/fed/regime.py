"""Where the split pays: the regime map of collaborative against the best on-board federated run.

The time-to-accuracy ratio (collaborative / best on-board) is mapped over the three things that
decide it: model size (the backbone profiled for its real FLOPs, bytes and weights), on-board
compute (a satellite device's sustained FLOP/s) and ISL availability (the same shell with and
without ISLs), for features reused after round 1 (frozen encoder, the paper's regime) and
recomputed every round (new captures each round), or, with ``model.trainable: split``, for the
embedding, LoRA and head trained (on board, or by split learning across the cut).

**What is measured and what is modelled.** Every time is the round simulator's (contact plan,
booked transfers, FLOPs of the configured model over the device profile). Accuracy is not
simulated: both schemes train the same head on the same features, so their accuracy per round
is the same (the committed satvit_small runs agree round for round); the number of rounds to the
target is read from a trained ledger (``target_rounds``), and each configuration is simulated for
that many rounds with the updates' numerics skipped. For the backbones not trained here
(satvit_large, satvit_huge) the costs are their real profiles while the rounds come from the
trained satvit_small run: an assumption every caption states. On-board compute what-ifs scale
the Jetson Nano's throughput and keep its memory (2 GiB for model parts); a scheme whose on-board
weights do not fit is refused (``ModelTooLarge``), and the map marks it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from devices import get_device, what_if
from research.data.embedded import load_embedded
from research.data.transforms import channel_stats, normalize
from research.fed.clients import build_model, exchanged_state, trained_module
from research.fed.config import FedConfig, ModelConfig
from research.fed.cost import Costs, cut_gradient, measure_costs
from research.fed.rounds import ModelTooLarge, timing_only
from research.fed.runner import Setup, build_plan, run
from research.figures import save_figure
from research.orbit.contact_plan import ContactPlan
from research.records import write_rows

BASE_DEVICE = "jetson_nano"
TOPOLOGY = {"isl": "ring", "no_isl": "star"}
"""The topology both schemes use with and without ISLs (the ring needs ISLs; with them it beats
the star for both schemes: 1.5 h against 62 h for collaborative, 8 s against 62 h on board, on
satvit_small)."""
SCHEMES = ("collaborative", "onboard")
TIE = 0.01
"""Ratios within 1% of 1 are ties (both schemes wait for the same passes): no line drawn."""


def target_rounds(rows: Sequence[dict], tol: float = 0.01) -> int:
    """Rounds a trained run needs to reach its final accuracy minus ``tol``."""
    final = float(rows[-1]["accuracy"])
    return next(int(r["round"]) for r in rows if float(r["accuracy"]) >= final - tol)


def what_if_device(factor: float, base: str = BASE_DEVICE) -> str:
    """:func:`devices.what_if` of the regime map's base device."""
    return what_if(base, factor)


def sample_images(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` real EuroSAT images (the embedded subset), normalised, and their labels: what the
    cut and its gradient are priced on."""
    data = load_embedded()
    images = data.images[:n]
    return normalize(images, *channel_stats(images)), data.labels[:n]


def model_costs(backbone: str, sample: tuple[torch.Tensor, torch.Tensor], link: str = "identity",
                trainable: str = "head", lora_rank: int = 8,
                gradient_link: str = "identity") -> Costs:
    """Profiled costs of ``backbone`` split after its patch embedding, training ``trainable``
    (weights do not change FLOPs or float32 bytes, so the model is built without loading any;
    a lossy link's payload is priced on real images through those random weights)."""
    images, labels = sample
    model = build_model(ModelConfig(backbone=backbone, weights=None, link=link,
                                    trainable=trainable, lora_rank=lora_rank,
                                    gradient_link=gradient_link))
    with torch.no_grad():
        tokens = model.satellite_part(images)
    grad = None if gradient_link == "identity" else cut_gradient(model, images, labels)
    return measure_costs(model, exchanged_state(trained_module(model, trainable)), tokens, grad)


def simulate(cfg: FedConfig, setup: Setup, costs: Costs, plan: ContactPlan, rounds: int,
             scheme: str, topology: str, device: str, reuse: bool, backbone: str) -> dict:
    """Simulated time to the end of round ``rounds`` for one configuration (or why not)."""
    with tempfile.TemporaryDirectory() as tmp:
        c = cfg.replace(scheme=scheme, topology=topology, out_dir=tmp,
                        **{"profiles.satellite": device, "train.rounds": rounds,
                           "comm.reuse_features": reuse, "model.backbone": backbone})
        # the accuracy of skipped numerics means nothing: one test image keeps evaluation cheap
        data = dataclasses.replace(setup.data, test_x=setup.data.test_x[:1],
                                   test_y=setup.data.test_y[:1], val_x=None, val_y=None)
        s = dataclasses.replace(setup, costs=costs, plan=plan, data=data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows = run(c, setup=s, resume=False, trainer=timing_only).rows
        except ModelTooLarge as err:
            return {"t_s": None, "why": str(err)}
    if len(rows) < rounds:
        return {"t_s": None, "why": f"stopped after round {len(rows)} (plan horizon)"}
    return {"t_s": rows[-1]["t_end_s"], "why": ""}


def regime_rows(cfg: FedConfig, setup: Setup, *, backbones: Sequence[str],
                factors: Sequence[float], rounds: int, isl_scenario: dict | None = None,
                reuse: Sequence[bool] = (True, False), progress: bool = True) -> list[dict]:
    """One row per (backbone, on-board compute, ISLs, reuse, scheme, topology)."""
    plans = {"isl": setup.plan}
    if isl_scenario is not None:
        plans["no_isl"] = build_plan(isl_scenario)
    sample = sample_images()
    m = cfg.model
    costs = {b: model_costs(b, sample, m.link, m.trainable, m.lora_rank, m.gradient_link)
             for b in backbones}
    grid = list(itertools.product(backbones, factors, plans, reuse, SCHEMES))
    rows = []
    for backbone, factor, isl, re, scheme in tqdm(grid, desc="regime", disable=not progress):
        device, topology = what_if_device(factor), TOPOLOGY[isl]
        t0 = time.time()
        got = simulate(cfg, setup, costs[backbone], plans[isl], rounds, scheme, topology,
                       device, re, backbone)
        c = costs[backbone]
        rows.append({"backbone": backbone, "compute_factor": factor, "device": device,
                     "sat_tflops": get_device(device).effective_flops / 1e12, "isls": isl,
                     "reuse_features": re, "scheme": scheme, "topology": topology,
                     "rounds": rounds, "t_s": got["t_s"], "refused": got["why"],
                     "params_m": (c.embed_param_bytes + c.encode_param_bytes
                                  + c.head_param_bytes) / 4e6,
                     "cut_bytes_per_image": c.cut_bytes,
                     "onboard_forward_gflops": c.onboard_forward_flops / 1e9,
                     "wall_s": time.time() - t0})
    return rows


def ratios(rows: Sequence[dict]) -> list[dict]:
    """Per point: collaborative's best time over on-board's best (None: on-board refused or
    never got there: the split is the only way; inf: collaborative never got there)."""
    points: dict[tuple, dict] = {}
    for r in rows:
        key = (r["backbone"], r["compute_factor"], r["isls"], r["reuse_features"])
        p = points.setdefault(key, {"backbone": r["backbone"], "compute_factor": r["compute_factor"],
                                    "sat_tflops": r["sat_tflops"], "isls": r["isls"],
                                    "reuse_features": r["reuse_features"],
                                    "params_m": r["params_m"]})
        if r["t_s"] is None:
            continue
        k = f"t_{r['scheme']}_s"
        if p.get(k) is None or r["t_s"] < p[k]:
            p[k], p[f"topology_{r['scheme']}"] = r["t_s"], r["topology"]
    out = []
    for p in points.values():
        tc, to = p.get("t_collaborative_s"), p.get("t_onboard_s")
        p["ratio"] = (None if to is None else (math.inf if tc is None else tc / to))
        out.append(p)
    return out


def plot_regime(points: Sequence[dict], out: Path, *, backbones: Sequence[str],
                factors: Sequence[float], caption: str) -> list[Path]:
    """Heat maps of log10(ratio) per (ISLs, reuse) panel, break-even (1) and 0.33 outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = sorted({(p["isls"], p["reuse_features"]) for p in points},
                    key=lambda k: (k[0] != "isl", not k[1]))
    width = 4.2 * len(panels) + 1.0
    # room under the axes for tick labels, the axis label and the caption, whatever its length
    # (7-pt text wraps at about 20 characters an inch)
    caption_lines = math.ceil(len(caption) / (20 * width)) + caption.count("\n")
    bottom_in = 0.75 + 0.13 * caption_lines
    height = 2.9 + bottom_in
    fig, axes = plt.subplots(1, len(panels), figsize=(width, height), squeeze=False)
    for ax, (isl, reuse) in zip(axes[0], panels, strict=True):
        grid = np.full((len(backbones), len(factors)), np.nan)
        ratio_grid = np.full_like(grid, np.nan)  # finite ratios only: where the lines are drawn
        text = [["" for _ in factors] for _ in backbones]
        for p in points:
            if (p["isls"], p["reuse_features"]) != (isl, reuse):
                continue
            i, j = backbones.index(p["backbone"]), list(factors).index(p["compute_factor"])
            r = p["ratio"]
            if r is None:
                grid[i, j], text[i][j] = -3.0, "split\nonly"
            elif math.isinf(r):
                grid[i, j], text[i][j] = 3.0, "never"
            else:
                grid[i, j] = math.log10(r)
                if abs(r - 1) > TIE:  # a tie draws no break-even line through noise
                    ratio_grid[i, j] = grid[i, j]
                text[i][j] = f"{r:.2g}" + (f"\n+-{p['ratio_std']:.1g}"
                                           if p.get("ratio_std") else "") + (
                    "*" if p.get("mixed_verdicts") else "")
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-3, vmax=3, origin="lower", aspect="auto")
        for i, j in itertools.product(range(len(backbones)), range(len(factors))):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7)
        if np.isfinite(ratio_grid).sum() > 3 and min(grid.shape) > 1:
            ax.contour(np.ma.masked_invalid(ratio_grid), levels=[math.log10(0.33), 0.0],
                       colors=["k", "k"], linestyles=["--", "-"], linewidths=1)
        ax.set_xticks(range(len(factors)),
                      [f"{get_device(what_if_device(f)).effective_flops / 1e12:.2g}"
                       for f in factors])
        ax.set_yticks(range(len(backbones)), [b.replace("satvit_", "") for b in backbones])
        ax.set_xlabel("on-board sustained TFLOP/s")
        ax.set_title(f"{'ISLs' if isl == 'isl' else 'no ISLs'}, features "
                     f"{'reused' if reuse else 'recomputed'}", fontsize=9)
    axes[0][0].set_ylabel("backbone")
    bottom = bottom_in / height
    fig.subplots_adjust(bottom=bottom, top=1 - 0.3 / height, right=0.86, wspace=0.25)
    cax = fig.add_axes((0.89, bottom, 0.015, 1 - 0.3 / height - bottom))
    fig.colorbar(im, cax=cax, label="log10(collaborative / best on-board)")
    fig.text(0.02, 0.01, caption, fontsize=7, va="bottom", wrap=True)
    return save_figure(fig, out, "fed_regime")


def over_seeds(per_seed: dict[int, list[dict]]) -> list[dict]:
    """One point per cell over seeds: ``ratio`` is the mean of the seeds' ratios (so it is not
    the ratio of the mean times ``t_*_s``), with ``ratio_std``, ``ratio_min``, ``ratio_max`` and
    every seed's ``ratio_seeds``. A cell where some seed has no finite ratio (split only, never)
    keeps the first seed's verdict and, when the seeds disagree, ``mixed_verdicts``."""
    seeds = sorted(per_seed)
    keyed = {s: {_cell(p): p for p in per_seed[s]} for s in seeds}
    out = []
    for key, first in keyed[seeds[0]].items():
        got = [keyed[s][key] for s in seeds if key in keyed[s]]
        p = {**first, "seeds": seeds, "ratio_seeds": [q["ratio"] for q in got]}
        rs = p["ratio_seeds"]
        for k in ("t_collaborative_s", "t_onboard_s"):  # means wherever every seed has one
            if len(got) > 1 and all(q.get(k) is not None for q in got):
                p[k] = sum(q[k] for q in got) / len(got)
        if len(rs) > 1 and all(r is not None and math.isfinite(r) for r in rs):
            mean = sum(rs) / len(rs)
            p.update(ratio=mean, ratio_std=math.sqrt(sum((r - mean) ** 2 for r in rs)
                                                     / (len(rs) - 1)),
                     ratio_min=min(rs), ratio_max=max(rs))
        elif len({"none" if r is None else "inf" if math.isinf(r) else "finite" for r in rs}) > 1:
            p["mixed_verdicts"] = True
        out.append(p)
    return out


def _cell(p: dict) -> tuple:
    return (p["backbone"], p["compute_factor"], p["isls"], p["reuse_features"])


def regime_map(cfg: FedConfig, setup: Setup, ledger_rows: Sequence[dict], out: Path, *,
               backbones: Sequence[str], factors: Sequence[float],
               isl_scenario: dict | None, reuse: Sequence[bool], command: str,
               seeds: Sequence[int] = (0,),
               setup_for_seed: Callable[[int], Setup] | None = None) -> list[dict]:
    """Simulate the grid for each of ``seeds`` (its partition from ``setup_for_seed``, its
    rounds from the ledger rows of that seed), write rows (CSV/JSON), ratios (mean and spread
    over seeds), the figure and its caption."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = sorted(set(seeds))
    runs, per_seed, k_of = [], {}, {}
    for seed in seeds:
        mine = [r for r in ledger_rows if int(r.get("seed") or 0) == seed]
        if not mine:
            raise ValueError(f"the ledger has no rows of seed {seed}; it has seeds "
                             f"{sorted({int(r.get('seed') or 0) for r in ledger_rows})}")
        if seed != seeds[0] and setup_for_seed is None:
            raise ValueError("more than one seed needs setup_for_seed (each seed's partition)")
        k_of[seed] = k = target_rounds(mine)
        s_setup = setup if seed == seeds[0] else setup_for_seed(seed)
        rows = regime_rows(cfg, s_setup, backbones=backbones, factors=factors, rounds=k,
                           isl_scenario=isl_scenario, reuse=reuse)
        runs += [{"seed": seed, **r} for r in rows]
        per_seed[seed] = ratios(rows)
    meta = {"command": command, "seeds": seeds, "target_rounds_per_seed": k_of,
            "target_rounds": k_of[seeds[0]]}  # the first seed's (older readers use it)
    write_rows(runs, out, "fed_regime_runs", meta=meta)
    points = over_seeds(per_seed)
    write_rows(points, out, "fed_regime", meta=meta)
    what = ("The head trained on frozen features" if cfg.model.trainable == "head" else
            f"Embedding + LoRA (rank {cfg.model.lora_rank}) + head trained: on board, or by "
            f"split learning (activations down, gradients up every step)")
    rounds = (f"{k_of[seeds[0]]} rounds" if len(seeds) == 1 else
              "each seed's rounds (" + ", ".join(f"seed {s}: {k}" for s, k in k_of.items())
              + f"; mean ratio over seeds {seeds}, +- its std)")
    caption = (f"{what}. Time to {rounds} (the trained satvit_small run's rounds to its final "
               f"accuracy - 1 pt; same per-round accuracy for both schemes), simulated on "
               f"{setup.plan.meta.get('scenario', 'the scenario')} with each backbone's real "
               f"profile; large/huge: costs profiled, rounds assumed from satvit_small. "
               f"What-if devices scale the Jetson Nano (memory kept). 'split only': the "
               f"on-board model does not fit. Dashed: 0.33, solid: break-even. `{command}`")
    plot_regime(points, out, backbones=backbones, factors=factors, caption=caption)
    (out / "fed_regime_caption.md").write_text(caption + "\n")
    (out / "fed_regime_summary.json").write_text(json.dumps(
        {**meta, "points": points}, indent=1, default=str))
    return points


def replot(out: Path) -> list[Path]:
    """Rebuild the points (:func:`ratios` per seed, :func:`over_seeds`) from the simulated rows
    of ``fed_regime_runs.json`` a run wrote, rewrite ``fed_regime.{csv,json}`` and the summary,
    and redraw ``fed_regime.png/.pdf`` with its caption."""
    out = Path(out)
    runs = json.loads((out / "fed_regime_runs.json").read_text())
    per_seed: dict[int, list[dict]] = {}
    for r in runs["rows"]:
        per_seed.setdefault(int(r.get("seed") or 0), []).append(r)
    points = over_seeds({s: ratios(rows) for s, rows in per_seed.items()})
    meta = {k: v for k, v in runs.items() if k != "rows"}
    write_rows(points, out, "fed_regime", meta=meta)
    (out / "fed_regime_summary.json").write_text(json.dumps(
        {**meta, "points": points}, indent=1, default=str))
    backbones = sorted({p["backbone"] for p in points},
                       key=lambda b: min(p["params_m"] for p in points if p["backbone"] == b))
    factors = sorted({p["compute_factor"] for p in points})
    caption = (out / "fed_regime_caption.md").read_text().strip()
    return plot_regime(points, out, backbones=backbones, factors=factors, caption=caption)


