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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from research.records import write_rows
from research.serving.compare import Comparison, compare_schemes
from research.serving.config import ServeConfig, is_codec_checkpoint
from research.serving.placement import (
    Demand,
    Placement,
    PlacementProblem,
    default_nodes,
    fallbacks,
    placement_method,
)
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

__all__ = ["ServingSetup", "build_service_catalog", "compare_setup", "evaluate_tasks",
           "first_placement", "prepare_serving", "run_serving", "verdict"]

RANDOM_MEAN, RANDOM_STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def _split(labels: torch.Tensor, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded stratified halves of the embedded set: coarse-head training + gallery, and queries."""
    from research.data.splits import stratified_split

    frac = min(max(n_train / len(labels), 0.05), 0.9)
    s = stratified_split(labels.numpy(), (frac, 0.0, 1.0 - frac), seed=0)
    return torch.as_tensor(s.train), torch.as_tensor(s.test)


def load_trained_codec(path: str, vit: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """The link of a ``CodecTask`` checkpoint and the block it encodes.

    The codec was trained on the tokens of one encoder; serving it behind another would decode
    into tokens that encoder never saw, so every encoder weight must equal the serving
    checkpoint's (a clear error otherwise).
    """
    from research.tasks.loading import load_classifier

    clf = load_classifier(path)
    if "codec" not in clf.hparams:
        raise ValueError(f"model.codec {path!r} is not a CodecTask checkpoint (no link trained at "
                         "a cut); expected one written by satedge fit --config "
                         "experiments/codec/...")
    theirs, ours = clf.model.vit.state_dict(), vit.state_dict()
    differ = sorted(k for k in ours if k not in theirs or not torch.equal(ours[k], theirs[k]))
    if differ:
        raise ValueError(f"model.codec {path!r} was trained on another encoder than "
                         f"model.checkpoint ({len(differ)} tensors differ, e.g. {differ[0]}); "
                         "expected a codec trained on the frozen serving encoder")
    return clf.model.link.eval(), int(clf.model.split_index)


def build_service_catalog(cfg: ServeConfig) -> tuple[Catalog, dict]:
    """Encoder from the checkpoint (or a random preset), the trained embedders of other
    modalities (``model.embedders``), coarse head trained on the encoder's features."""
    from research.data.embedded import load_embedded
    from research.models import build_backbone
    from research.serving.modalities import load_embedder_weights
    from research.tasks.loading import load_classifier

    m = cfg.model
    if m.checkpoint:
        clf = load_classifier(m.checkpoint)
        vit, mean, std = clf.model.vit, clf.mean, clf.std
    else:
        torch.manual_seed(0)
        vit, mean, std = build_backbone(m.backbone, num_classes=10).eval(), RANDOM_MEAN, RANDOM_STD
    vit.eval()
    embedders, stats, emb_meta = ({}, {}, {}) if not m.embedders else \
        load_embedder_weights(m.embedders, vit)
    data = load_embedded()
    train_idx, test_idx = _split(data.labels, m.coarse_train_images)
    codec, codec_cut = m.codec, 0
    if is_codec_checkpoint(m.codec):
        if not m.checkpoint:
            raise ValueError(f"model.codec {m.codec!r} needs the encoder it was trained on: set "
                             "model.checkpoint")
        codec, codec_cut = load_trained_codec(m.codec, vit)
    try:
        catalog = build_catalog(vit, mean, std, cuts=m.cuts, codec=codec, codec_cut=codec_cut,
                                embedders=embedders, embedder_stats=stats)
    except ValueError as err:
        raise ValueError(f"model.cuts {m.cuts} with model.codec {m.codec!r}: {err}") from None
    feats = catalog.features(data.images[train_idx])
    head = train_coarse_head(feats, data.labels[train_idx], steps=m.coarse_steps)
    catalog = build_catalog(vit, mean, std, cuts=m.cuts, codec=codec, codec_cut=codec_cut,
                            coarse_head=head, embedders=embedders, embedder_stats=stats,
                            retrieval_answer=m.retrieval_answer)
    return catalog, {"data": data, "train_idx": train_idx, "test_idx": test_idx,
                     "train_features": feats,
                     "embedders": {k: v for k, v in emb_meta.items() if k != "losses"}}


def _task_scores(catalog: Catalog, outputs: dict[str, torch.Tensor], labels: torch.Tensor,
                 ctx: dict, ks: list[int]) -> dict:
    gallery = catalog.services[catalog.heads["retrieval"]](ctx["train_features"])
    recall = recall_at_k(outputs["retrieval"], labels, gallery, ctx["data"].labels[ctx["train_idx"]],
                         ks)
    return {
        "landcover_acc": float((outputs["landcover"].argmax(1) == labels).float().mean()),
        "coarse_acc": float((outputs["coarse"].argmax(1) == coarse_labels(labels)).float().mean()),
        **{f"retrieval_recall@{k}": v for k, v in recall.items()},
    }


def _heads(catalog: Catalog, features: torch.Tensor) -> dict[str, torch.Tensor]:
    return {t: catalog.services[catalog.heads[t]](features) for t in catalog.tasks}


@torch.no_grad()
def token_bytes_per_tile(catalog: Catalog, images: torch.Tensor, modality: str) -> float | None:
    """Mean bytes one tile's payload takes across the cut through the catalog's codec, measured
    on real tiles (``None`` without a codec: float32 tokens have a fixed size)."""
    if catalog.codec is None:
        return None
    front, codec = catalog.services[catalog.embedders[modality]], catalog.services[catalog.codec]
    sizes = []
    for i in range(0, len(images), 100):
        tokens = front(catalog.normalize(images[i:i + 100], modality))
        sizes += [len(b) for b in codec.encode(tokens)]
    return float(np.mean(sizes))


@torch.no_grad()
def evaluate_tasks(catalog: Catalog, ctx: dict, n_images: int, ks: list[int],
                   modalities: list[str] | None = None, image_formats: list[str] = (),
                   image_quality: int = 90) -> dict:
    """Accuracy of both classifiers and recall@k of retrieval per modality, on held-out tiles.

    For each modality: ``served`` through the in-process runtime (the link codec included: what
    microservices deliver), ``float`` with tokens kept in float32 (on-board and raw-downlink
    ground inference), and per image format ``<format>`` on the decoded tiles, with the mean
    bytes per tile that format cost (``<format>_bytes_per_tile``). The gallery is RGB.
    """
    from encoders.images import image_roundtrip
    from research.serving.modalities import get_modality

    data, test_idx = ctx["data"], ctx["test_idx"][:n_images]
    rgb, labels = data.images[test_idx], data.labels[test_idx]
    rt = InProcessRuntime(catalog)
    tasks = tuple(catalog.tasks)
    out: dict = {"images": len(rgb), "gallery": len(ctx["train_idx"]), "codec": catalog.codec,
                 "modalities": {}}
    for name in modalities or ["rgb"]:
        mod = get_modality(name)
        images = mod.from_rgb(rgb)
        served: dict[str, list[torch.Tensor]] = {t: [] for t in tasks}
        for i in range(0, len(images), 100):
            resp = rt.handle(Request(f"eval-{name}-{i}", tasks, "eval", payload=images[i:i + 100],
                                     modality=name))
            if not resp.ok:
                raise RuntimeError(f"evaluation request failed: {resp.error}")
            for t in tasks:
                served[t].append(resp.outputs[t])
        row = {"measured": mod.measured, "sensor": mod.sensor, "raw_bytes_per_tile": mod.raw_bytes,
               "token_bytes_per_tile": token_bytes_per_tile(catalog, images, name),
               "served": _task_scores(catalog, {t: torch.cat(v) for t, v in served.items()},
                                      labels, ctx, ks),
               "float": _task_scores(catalog, _heads(catalog, catalog.features(images, name)),
                                     labels, ctx, ks)}
        for fmt in image_formats:
            if mod.bytes_per_sample != 1:
                continue  # 16-bit samples: no 8-bit image format applies
            coded = [image_roundtrip(img, fmt, image_quality) for img in images]
            decoded = torch.stack([c[0] for c in coded])
            row[fmt] = _task_scores(catalog, _heads(catalog, catalog.features(decoded, name)),
                                    labels, ctx, ks)
            row[f"{fmt}_bytes_per_tile"] = float(np.mean([c[1] for c in coded]))
        out["modalities"][name] = row
    return out


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


def _nodes_and_demands(cfg: ServeConfig, plan) -> tuple[dict, list[Demand]]:
    """Nodes from the profiles; one demand per source, taking the modalities in turn."""
    n, w = cfg.nodes, cfg.workload
    nodes = default_nodes(plan.satellites, plan.stations, n.satellite_profile, n.ground_profile,
                          n.satellite_memory_bytes)
    mods = w.modalities
    demands = [Demand(s, tuple(w.tasks), w.rate_hz, w.tiles, mods[i % len(mods)])
               for i, s in enumerate(_sources(cfg, plan.satellites))]
    return nodes, demands


def first_placement(cfg: ServeConfig, catalog: Catalog, ctx: dict | None = None) -> Placement:
    """The placement of the first epoch (``t = 0``) with the configured method: what
    ``satedge serve --runtime ray`` deploys. With ``ctx`` (from :func:`build_service_catalog`)
    the payload bytes per tile are measured on up to 100 held-out tiles per modality."""
    from research.serving.modalities import get_modality

    plan = cfg.build_plan()
    nodes, demands = _nodes_and_demands(cfg, plan)
    p = cfg.placement
    sizes = None
    if ctx is not None and catalog.codec is not None:
        rgb = ctx["data"].images[ctx["test_idx"][:100]]
        sizes = {m: token_bytes_per_tile(catalog, get_modality(m).from_rgb(rgb), m)
                 for m in dict.fromkeys(cfg.workload.modalities)}
    problem = PlacementProblem.from_catalog(catalog, nodes, demands, epoch_s=p.epoch_s,
                                            modality_token_bytes=sizes, **p.problem_options())
    return placement_method(p.method)(problem, Network(plan, cfg.network), 0.0)


def placement_report(placements: list[Placement]) -> dict:
    """Per epoch: solver, objective, greedy's objective on the same problem, the limits that
    bind; and every MILP fallback with its reason (reported, never hidden)."""
    epochs = [{"t": p.t, "solver": p.solver, "objective": p.objective,
               "greedy_objective": p.info.get("greedy_objective"),
               "binding": p.info.get("binding", [])} for p in placements]
    return {"epochs": epochs, "fallbacks": [{"t": t, "reason": r} for t, r in fallbacks(placements)],
            "milp_strictly_better_epochs": sum(
                1 for e in epochs if e["greedy_objective"] is not None
                and e["objective"] < e["greedy_objective"] - 1e-9)}


def scheme_accuracy_key(scheme: str) -> str:
    """Which measured accuracy a scheme delivers: microservices the served chain (link codec
    included), ``ground_<format>`` the decoded tiles, on-board and raw downlink float tokens."""
    if scheme == "microservice":
        return "served"
    if scheme.startswith("ground_") and scheme != "ground_raw":
        return scheme.removeprefix("ground_")
    return "float"


def option_accuracy(accuracy: dict, schemes: list[str]) -> dict[str, dict[str, float]]:
    """Per modality, each scheme's measured land-cover accuracy (what a policy expects of it)."""
    return {m: {s: float(row[scheme_accuracy_key(s)]["landcover_acc"]) for s in schemes
                if scheme_accuracy_key(s) in row}
            for m, row in accuracy["modalities"].items()}


def _add_scheme_accuracy(cmp: Comparison, accuracy: dict, demand_modalities: list[str]) -> None:
    """``landcover_acc`` of each scheme: its measured accuracy averaged over the demands'
    modalities (every demand sends the same tiles at the same rate); a policy's is, per demand,
    the mean over its requests of the accuracy of the scheme it chose for each (an expectation:
    requests carry no pixels), averaged over the demands the same way."""
    rows = [accuracy["modalities"][m] for m in demand_modalities]
    measured_only = all(r["measured"] for r in rows)
    for scheme, s in cmp.summaries.items():
        s["measured_modalities_only"] = measured_only
        if "option_mix" not in s:
            key = scheme_accuracy_key(scheme)
            s["landcover_acc"] = float(np.mean([r[key]["landcover_acc"] for r in rows]))
            continue
        per_source: dict[str, list[float]] = {}
        for o in cmp.outcomes:
            if o.scheme == scheme:
                row = accuracy["modalities"][o.modality][scheme_accuracy_key(o.option)]
                per_source.setdefault(o.source, []).append(row["landcover_acc"])
        s["landcover_acc"] = float(np.mean([np.mean(v) for v in per_source.values()]))


def verdict(summaries: dict[str, dict]) -> list[str]:
    """Where microservices beat (or do not beat) each baseline on p95 latency, on-board memory,
    deadline misses and tiles delivered in time (policies, which choose among the schemes, are
    not baselines)."""
    lines = []
    ms = summaries["microservice"]
    for base, b in summaries.items():
        if base == "microservice" or "option_mix" in b:  # a policy chooses among the schemes
            continue
        for key, label, more_is_better in (("landcover_acc", "land-cover accuracy", True),
                                           ("p95_latency_s", "p95 latency", False),
                                           ("onboard_memory_bytes", "on-board memory", False),
                                           ("missed", "deadline misses", False),
                                           ("delivered_tiles", "tiles delivered in time", True)):
            better = ms[key] > b[key] if more_is_better else ms[key] < b[key]
            word = "beats" if better else ("ties" if ms[key] == b[key] else "does NOT beat")
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
        "placement_report": placement_report(cmp.placements),
    }
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=1, default=float))
    return path


@dataclass
class ServingSetup:
    """What every comparison of a config shares: the services, their measured accuracy and
    image sizes, the contact plan, the nodes and the config's demands."""

    catalog: Catalog
    ctx: dict
    accuracy: dict
    image_tile_bytes: dict[str, dict[str, float]]
    plan: object
    nodes: dict
    demands: list[Demand]
    timings: dict[str, float]


def prepare_serving(cfg: ServeConfig) -> ServingSetup:
    """Build the catalog, measure accuracy (and image sizes) per modality, build the plan."""
    tic = time.perf_counter()
    catalog, ctx = build_service_catalog(cfg)
    timings = {"catalog_s": time.perf_counter() - tic}
    tic = time.perf_counter()
    b = cfg.baselines
    accuracy = evaluate_tasks(catalog, ctx, cfg.evaluate.images, cfg.evaluate.recall_k,
                              sorted(set(cfg.workload.modalities)), b.image_formats,
                              b.image_quality)
    image_tile_bytes = {
        fmt: {m: row[f"{fmt}_bytes_per_tile"] for m, row in accuracy["modalities"].items()}
        for fmt in b.image_formats
        if all(f"{fmt}_bytes_per_tile" in row for row in accuracy["modalities"].values())}
    timings["evaluate_s"] = time.perf_counter() - tic
    tic = time.perf_counter()
    plan = cfg.build_plan()
    timings["plan_s"] = time.perf_counter() - tic
    nodes, demands = _nodes_and_demands(cfg, plan)
    return ServingSetup(catalog, ctx, accuracy, image_tile_bytes, plan, nodes, demands, timings)


def measured_token_bytes(accuracy: dict) -> dict[str, float] | None:
    """Per modality, the payload bytes per tile measured by :func:`evaluate_tasks`."""
    sizes = {m: row["token_bytes_per_tile"] for m, row in accuracy["modalities"].items()
             if row.get("token_bytes_per_tile") is not None}
    return sizes or None


def compare_setup(cfg: ServeConfig, setup: ServingSetup,
                  demands: list[Demand] | None = None) -> Comparison:
    """Every scheme on ``demands`` (default the config's), each summary with its measured
    land-cover accuracy."""
    demands = setup.demands if demands is None else demands
    w, p = cfg.workload, cfg.placement
    horizon = min(w.horizon_s, setup.plan.horizon_s)
    cmp = compare_schemes(setup.catalog, Network(setup.plan, cfg.network), setup.nodes, demands,
                          horizon_s=horizon, epoch_s=p.epoch_s, deadline_s=w.deadline_s,
                          seed=w.seed, method=p.method, image_tile_bytes=setup.image_tile_bytes,
                          modality_token_bytes=measured_token_bytes(setup.accuracy),
                          policies=cfg.policies,
                          option_accuracy=option_accuracy(setup.accuracy, cfg.policy_options()),
                          **p.problem_options())
    _add_scheme_accuracy(cmp, setup.accuracy, [d.modality for d in demands])
    return cmp


def run_serving(cfg: ServeConfig, out_dir: str | Path) -> dict:
    """Build, evaluate and compare; returns the summary written to ``out_dir/summary.json``."""
    from research.tracking import log_run

    setup = prepare_serving(cfg)
    cmp = compare_setup(cfg, setup)
    out = Path(out_dir)
    path = _write(out, cfg, setup.accuracy, cmp, setup.timings)
    summary = json.loads(path.read_text())
    schemes = summary["schemes"]
    log_run("serve", cfg.raw, {"accuracy": setup.accuracy, **schemes}, out_dir=out,
            tables={"schemes": [{"scheme": s, **v} for s, v in schemes.items()]})
    return summary
