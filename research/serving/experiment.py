"""A whole serving run from a :class:`ServeConfig`: build, evaluate on real images, compare schemes.

Shared by ``satedge serve`` and :mod:`research.serving.figure` (``scripts/fig_serving.py``).
Writes ``summary.json`` (config, accuracy, per-scheme numbers, placements), ``outcomes.csv`` /
``outcomes.json`` (one row per request and scheme, in the :mod:`research.records` vocabulary,
written by :func:`research.records.write_rows`) and logs the run with
:func:`research.tracking.log_run`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from research.records import write_rows
from research.serving.compare import SCHEMES, Comparison, compare_schemes
from research.serving.config import ServeConfig
from research.serving.placement import Demand, default_nodes
from research.serving.routing import Network
from research.serving.runtime import InProcessRuntime
from research.serving.schema import Request
from research.serving.tasks import (
    Catalog,
    build_catalog,
    coarse_labels,
    recall_at_k,
    train_coarse_head,
)

__all__ = ["build_service_catalog", "evaluate_tasks", "run_serving", "verdict"]

RANDOM_MEAN, RANDOM_STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def _split(labels: torch.Tensor, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded stratified halves of the embedded set: coarse-head training + gallery, and queries."""
    from research.data.splits import stratified_split

    frac = min(max(n_train / len(labels), 0.05), 0.9)
    s = stratified_split(labels.numpy(), (frac, 0.0, 1.0 - frac), seed=0)
    return torch.as_tensor(s.train), torch.as_tensor(s.test)


def build_service_catalog(cfg: ServeConfig) -> tuple[Catalog, dict]:
    """Encoder from the checkpoint (or a random preset), coarse head trained on its features."""
    from research.data.embedded import load_embedded
    from research.models import build_backbone
    from research.tasks.loading import load_classifier

    m = cfg.model
    if m.checkpoint:
        clf = load_classifier(m.checkpoint)
        vit, mean, std = clf.model.vit, clf.mean, clf.std
    else:
        torch.manual_seed(0)
        vit, mean, std = build_backbone(m.backbone, num_classes=10).eval(), RANDOM_MEAN, RANDOM_STD
    vit.eval()
    data = load_embedded()
    train_idx, test_idx = _split(data.labels, m.coarse_train_images)
    base = build_catalog(vit, mean, std, cuts=m.cuts)
    feats = base.features(data.images[train_idx])
    head = train_coarse_head(feats, data.labels[train_idx], steps=m.coarse_steps)
    catalog = build_catalog(vit, mean, std, cuts=m.cuts, codec=m.codec, coarse_head=head)
    return catalog, {"data": data, "train_idx": train_idx, "test_idx": test_idx,
                     "train_features": feats}


@torch.no_grad()
def evaluate_tasks(catalog: Catalog, ctx: dict, n_images: int, ks: list[int]) -> dict:
    """Accuracy of both classifiers and recall@k of retrieval, served by the in-process runtime."""
    data, test_idx = ctx["data"], ctx["test_idx"][:n_images]
    images, labels = data.images[test_idx], data.labels[test_idx]
    rt = InProcessRuntime(catalog)
    tasks = tuple(catalog.tasks)
    outs: dict[str, list[torch.Tensor]] = {t: [] for t in tasks}
    for i in range(0, len(images), 100):
        resp = rt.handle(Request(f"eval{i}", tasks, "eval", payload=images[i:i + 100]))
        if not resp.ok:
            raise RuntimeError(f"evaluation request failed: {resp.error}")
        for t in tasks:
            outs[t].append(resp.outputs[t])
    out = {t: torch.cat(v) for t, v in outs.items()}
    gallery = catalog.services[catalog.heads["retrieval"]](ctx["train_features"])
    recall = recall_at_k(out["retrieval"], labels, gallery, data.labels[ctx["train_idx"]], ks)
    return {
        "images": len(images),
        "landcover_acc": float((out["landcover"].argmax(1) == labels).float().mean()),
        "coarse_acc": float((out["coarse"].argmax(1) == coarse_labels(labels)).float().mean()),
        **{f"retrieval_recall@{k}": v for k, v in recall.items()},
        "gallery": len(ctx["train_idx"]),
        "codec": catalog.codec,
    }


def _sources(cfg: ServeConfig, satellites: list[str]) -> list[str]:
    src = cfg.workload.sources
    if isinstance(src, int):
        step = max(len(satellites) // max(src, 1), 1)
        return satellites[::step][:src]
    unknown = [s for s in src if s not in satellites]
    if unknown:
        raise ValueError(f"workload.sources {unknown} are not satellites of the plan "
                         f"(e.g. {satellites[:3]})")
    return list(src)


def verdict(summaries: dict[str, dict]) -> list[str]:
    """Where microservices beat (or do not beat) each baseline on p95 latency and memory."""
    lines = []
    ms = summaries["microservice"]
    for base in ("monolithic", "ground"):
        b = summaries[base]
        for key, label in (("p95_latency_s", "p95 latency"),
                           ("onboard_memory_bytes", "on-board memory"),
                           ("missed", "deadline misses")):
            better = ms[key] < b[key]
            same = ms[key] == b[key]
            word = "beats" if better else ("ties" if same else "does NOT beat")
            lines.append(f"microservice {word} {base} on {label}: {ms[key]:.4g} vs {b[key]:.4g}")
    return lines


def _write(out: Path, cfg: ServeConfig, accuracy: dict, cmp: Comparison, timings: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    write_rows(cmp.rows(), out, "outcomes", meta={"name": cfg.name, "config": cfg.raw})
    summary = {
        "name": cfg.name, "config": cfg.raw, "accuracy": accuracy, "schemes": cmp.summaries,
        "verdict": verdict(cmp.summaries), "timings_s": {**timings, **cmp.timings_s},
        "network": cfg.network.to_dict(), "network_use": cmp.network_use,
        "placements": [{"t": p.t, "solver": p.solver, "objective": p.objective,
                        "replicas": p.replicas,
                        "info": {k: v for k, v in p.info.items() if k != "message"}}
                       for p in cmp.placements],
    }
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=1, default=float))
    return path


def run_serving(cfg: ServeConfig, out_dir: str | Path) -> dict:
    """Build, evaluate and compare; returns the summary written to ``out_dir/summary.json``."""
    from research.tracking import log_run

    tic = time.perf_counter()
    catalog, ctx = build_service_catalog(cfg)
    timings = {"catalog_s": time.perf_counter() - tic}
    tic = time.perf_counter()
    accuracy = evaluate_tasks(catalog, ctx, cfg.evaluate.images, cfg.evaluate.recall_k)
    timings["evaluate_s"] = time.perf_counter() - tic
    tic = time.perf_counter()
    plan = cfg.build_plan()
    timings["plan_s"] = time.perf_counter() - tic
    n = cfg.nodes
    nodes = default_nodes(plan.satellites, plan.stations, n.satellite_profile, n.ground_profile,
                          n.satellite_memory_bytes)
    w, p = cfg.workload, cfg.placement
    demands = [Demand(s, tuple(w.tasks), w.rate_hz, w.tiles, w.modality)
               for s in _sources(cfg, plan.satellites)]
    horizon = min(w.horizon_s, plan.horizon_s)
    cmp = compare_schemes(catalog, Network(plan, cfg.network), nodes, demands, horizon_s=horizon,
                          epoch_s=p.epoch_s, deadline_s=w.deadline_s, seed=w.seed,
                          method=p.method, memory_weight=p.memory_weight,
                          max_utilisation=p.max_utilisation,
                          neighbourhood_hops=p.neighbourhood_hops)
    out = Path(out_dir)
    path = _write(out, cfg, accuracy, cmp, timings)
    summary = json.loads(path.read_text())
    log_run("serve", cfg.raw, {"accuracy": accuracy, **{s: summary["schemes"][s]
                                                        for s in SCHEMES}},
            out_dir=out, tables={"schemes": [{"scheme": s, **summary["schemes"][s]}
                                             for s in SCHEMES]})
    return summary
