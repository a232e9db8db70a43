"""A bounded live run: a few concurrent clients send a fixed number of real requests to a runtime.

``satedge serve --runtime ray`` (:func:`run_ray_serving`) deploys the first epoch's placement on
Ray Serve on localhost, sends ``--requests`` requests (real EuroSAT tiles, the workload's tasks and
modality) over HTTP from ``--clients`` threads, optionally kills ``--kills`` replica processes while
they are inside a request, then shuts Ray down. It reports throughput and the p50/p95 of real
wall-clock latency (client send to answer), and proves exactly-once from the replicas' own
records (:func:`exactly_once`): every request answered, and for every request every service of
its chain executed to completion exactly once.

:func:`run_load` and :func:`exactly_once` take any runtime (a ``send(request) -> Response``
callable), so they are tested on the in-process runtime without Ray.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from research.serving.modalities import get_modality
from research.serving.schema import Request, Response
from research.serving.tasks import Catalog

__all__ = ["LoadResult", "exactly_once", "kill_schedule", "live_requests", "print_live_summary",
           "run_load", "run_ray_serving", "summarise_load"]


def live_requests(images: torch.Tensor, *, tasks: Sequence[str], sources: Sequence[str],
                  tiles: int = 8, modality: str | Sequence[str] = "rgb", n: int | None = None,
                  prefix: str = "live") -> Iterable[Request]:
    """``n`` requests (``None``: without end), each ``tiles`` consecutive RGB images (wrapping
    round) as the source's sensor sees them, sources in turn; ids ``<prefix>-<i>``. Request
    ``i`` carries images ``i*tiles ...``. ``modality``: one for every source, or one per source."""
    mods = [modality] * len(sources) if isinstance(modality, str) else list(modality)
    if len(mods) != len(sources):
        raise ValueError(f"{len(mods)} modalities for {len(sources)} sources; expected one "
                         "modality, or one per source")
    count = itertools.count() if n is None else range(n)
    for i in count:
        idx = torch.arange(i * tiles, (i + 1) * tiles) % len(images)
        m = mods[i % len(sources)]
        yield Request(f"{prefix}-{i}", tuple(tasks), sources[i % len(sources)],
                      payload=get_modality(m).from_rgb(images[idx]), modality=m, tiles=tiles)


@dataclass
class LoadResult:
    """One row per request sent (in order of answer), and the run's wall-clock span."""

    rows: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    stopped_by: str = "requests"


def run_load(send: Callable[[Request], Response], requests: Iterable[Request], *,
             clients: int = 4, duration_s: float | None = None,
             stop: threading.Event | None = None, retries: int = 0,
             on_answer: Callable[[Request, Response], Mapping] | None = None,
             progress: bool = True, total: int | None = None, desc: str = "requests"
             ) -> LoadResult:
    """Send ``requests`` from ``clients`` threads until they run out, ``duration_s`` has passed
    or ``stop`` is set (requests in flight then finish); each request is sent once, plus up to
    ``retries`` times more while it has no ok answer.

    A row: ``request_id``, ``client``, ``source``, ``modality``, ``tasks``, ``tiles``, ``sent_s`` (from the
    start), ``latency_s`` (first send to final answer, wall clock), ``ok``, ``error``,
    ``attempts``, ``served_by``, plus what ``on_answer`` returns.
    """
    from tqdm.auto import tqdm

    it = iter(requests)
    lock = threading.Lock()
    result = LoadResult()
    t_start = time.perf_counter()
    bar = tqdm(total=total, desc=desc, disable=not progress, unit="req")

    def next_request() -> Request | None:
        with lock:
            if stop is not None and stop.is_set():
                result.stopped_by = "stop"
                return None
            if duration_s is not None and time.perf_counter() - t_start >= duration_s:
                result.stopped_by = "duration"
                return None
            return next(it, None)

    def client(c: int) -> None:
        while (req := next_request()) is not None:
            t0 = time.perf_counter()
            resp, error, attempts = None, "", 0
            while attempts <= retries:
                attempts += 1
                try:
                    resp = send(req)
                    error = resp.error or ""
                except Exception as err:  # noqa: BLE001 - transport failure: counted, maybe retried
                    resp, error = None, f"{type(err).__name__}: {err}"
                if resp is not None and resp.ok:
                    break
            t1 = time.perf_counter()
            ok = resp is not None and resp.ok
            row = {"request_id": req.request_id, "client": c, "source": req.source,
                   "modality": req.modality,
                   "tasks": "+".join(req.tasks), "tiles": req.tiles,
                   "sent_s": t0 - t_start, "latency_s": t1 - t0, "ok": ok, "error": error,
                   "attempts": attempts,
                   "served_by": " ".join(resp.served_by) if resp is not None else ""}
            if ok and on_answer is not None:
                row.update(on_answer(req, resp))
            with lock:
                result.rows.append(row)
                bar.update(1)

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.close()
    result.wall_s = time.perf_counter() - t_start
    return result


def exactly_once(chains: Mapping[str, Iterable[str]],
                 completed: Mapping[str, Mapping[str, Sequence[str]]]) -> dict[str, list[str]]:
    """Check executions against chains: ``chains`` maps each answered request id to the services
    its answer needs, ``completed`` (the replicas' records) maps request id -> service -> the
    replicas that ran that call to completion.

    Returns ``{"not_executed": [...], "executed_twice": [...], "unexpected": [...]}``: request ids
    with a service of their chain never completed, with a service completed more than once, and
    with a completed service outside their chain. All empty = each executed exactly once.
    """
    out: dict[str, list[str]] = {"not_executed": [], "executed_twice": [], "unexpected": []}
    for rid, services in chains.items():
        services = set(services)
        done = completed.get(rid, {})
        if any(not done.get(s) for s in services):
            out["not_executed"].append(rid)
        if any(len(keys) > 1 for keys in done.values()):
            out["executed_twice"].append(rid)
        if set(done) - services:
            out["unexpected"].append(rid)
    return out


def kill_schedule(placement: Mapping[str, Sequence[str]], services: Sequence[str],
                  kills: int) -> list[str]:
    """``kills`` replica keys to kill in turn: replicas of services with two or more (a failover
    target exists), interleaved across services; every replica if no service has two."""
    multi = [s for s in services if len(placement.get(s, ())) > 1] or list(services)
    per = [[f"{s}@{n}" for n in placement.get(s, ["local"])] for s in multi]
    order = [k for group in itertools.zip_longest(*per) for k in group if k is not None]
    return [order[i % len(order)] for i in range(kills)] if order else []


def summarise_load(result: LoadResult, checks: Mapping[str, Sequence[str]] | None = None,
                   router_runs: Mapping[str, int] | None = None) -> dict:
    """Throughput, latency percentiles and the exactly-once counts of a run.

    ``answered``: requests with an ok answer; ``lost``: requests sent without one; ``duplicated``:
    requests some service executed to completion twice (``checks`` from :func:`exactly_once`) or
    whose chain the router completed twice (``router_runs``).
    """
    rows = result.rows
    ok = [r for r in rows if r["ok"]]
    lat = np.array([r["latency_s"] for r in ok], dtype=float)
    span = max((r["sent_s"] + r["latency_s"] for r in rows), default=0.0)
    dup = set((checks or {}).get("executed_twice", []))
    dup |= {rid for rid, n in (router_runs or {}).items() if n > 1}
    pct = (lambda q: float(np.percentile(lat, q))) if len(lat) else (lambda q: float("nan"))
    out = {
        "sent": len(rows), "answered": len(ok), "lost": len(rows) - len(ok),
        "duplicated": len(dup), "retried": sum(r["attempts"] > 1 for r in rows),
        "wall_s": span, "throughput_rps": len(ok) / span if span > 0 else 0.0,
        "p50_latency_s": pct(50), "p95_latency_s": pct(95),
        "mean_latency_s": float(lat.mean()) if len(lat) else float("nan"),
        "max_latency_s": float(lat.max()) if len(lat) else float("nan"),
        "stopped_by": result.stopped_by,
    }
    if checks is not None:
        out["not_executed"] = len(checks.get("not_executed", []))
        out["unexpected_executions"] = len(checks.get("unexpected", []))
    return out


def _chain(catalog: Catalog, tasks: Sequence[str], modality: str) -> set[str]:
    return {s for t in tasks for s in catalog.chain(t, modality)}


def _deployment(replicas: Mapping[str, Sequence[str]], catalog: Catalog,
                modalities: Sequence[str], max_replicas: int) -> dict[str, list[str]]:
    """The placement's replicas, at most ``max_replicas`` per service (first nodes, sorted);
    the codec goes where the deployed embedders are (tokens are encoded on board)."""
    out = {s: sorted(nodes)[:max_replicas] for s, nodes in replicas.items()
           if nodes and catalog.services[s].kind != "decode"}  # decoding runs inside the codec
    if catalog.codec:
        out[catalog.codec] = sorted({n for m in modalities
                                     for n in out.get(catalog.embedders[m], ["local"])})
    return out


def print_live_summary(summary: dict, out: Path | None = None) -> None:
    """The live run as a table, then accuracy and the exactly-once verdict."""
    from rich.console import Console
    from rich.table import Table

    s = summary["load"]
    table = Table(title=f"Ray Serve on localhost: {summary['name']}")
    for col in ("sent", "answered", "lost", "duplicated", "req/s", "p50 s", "p95 s", "kills"):
        table.add_column(col, justify="right")
    table.add_row(str(s["sent"]), str(s["answered"]), str(s["lost"]), str(s["duplicated"]),
                  f"{s['throughput_rps']:.3g}", f"{s['p50_latency_s']:.3g}",
                  f"{s['p95_latency_s']:.3g}", f"{len(summary['kills'])} / {summary['kills_asked']}")
    console = Console(width=max(Console().width, 100))
    console.print(table)
    if "landcover_acc" in summary:
        console.print(f"land cover accuracy of the live answers: {summary['landcover_acc']:.4f}")
    verdict = "yes" if summary["exactly_once"] else "NO"
    console.print(f"every request answered once and executed once: {verdict} "
                  f"({summary['failovers']} calls failed over, {summary['hedges']} stuck calls "
                  "sent again)"
                  + (f"; outputs in {out}" if out else ""))


def run_ray_serving(cfg, out_dir: str | Path, *, requests: int | None = 200,
                    duration_s: float | None = None, clients: int = 4, tiles: int = 8,
                    kills: int = 0, max_replicas: int = 2, port: int = 8000,
                    num_cpus: int = 2, progress: bool = True) -> dict:
    """The ``--runtime ray`` run of ``satedge serve``: deploy, load, check, write, shut down.

    Writes ``ray_requests.{csv,json}`` (one row per request, :func:`research.records.write_rows`;
    the JSON also holds the summary, the deployment and the kills) and ``ray_summary.json``.
    """
    from tqdm.auto import tqdm

    from research.records import write_rows
    from research.serving.experiment import build_service_catalog, first_placement
    from research.serving.ray_runtime import RayServeRuntime

    if requests is None and duration_s is None:
        raise ValueError("a live run needs --requests or --duration-s (or both)")
    w = cfg.workload
    tic = time.perf_counter()
    catalog, ctx = build_service_catalog(cfg)
    placement = first_placement(cfg, catalog, ctx)
    deploy = _deployment(placement.replicas, catalog, w.modalities, max_replicas)
    timings = {"catalog_and_placement_s": time.perf_counter() - tic}
    data, test_idx = ctx["data"], ctx["test_idx"]
    images, labels = data.images[test_idx], data.labels[test_idx]
    pairs = [(src, m) for m in dict.fromkeys(w.modalities)
             for src in deploy.get(catalog.embedders[m], [])] or [("local", w.modalities[0])]
    sources, source_modality = [p[0] for p in pairs], [p[1] for p in pairs]
    rt = RayServeRuntime(catalog, deploy, port=port, tasks=w.tasks,
                         modalities=list(dict.fromkeys(w.modalities)),
                         num_cpus=num_cpus)
    chain = {m: _chain(catalog, w.tasks, m) for m in w.modalities}
    kill_log: list[dict] = []
    try:
        tic = time.perf_counter()
        if progress:
            print(f"starting Ray Serve on localhost: {len(rt.replica_keys)} replicas of "
                  f"{len(rt.services)} services (minutes on a busy machine)", file=sys.stderr)
        rt.start()
        timings["ray_start_s"] = time.perf_counter() - tic
        warmup = live_requests(images, tasks=w.tasks, sources=sources, tiles=tiles,
                               modality=source_modality, n=len(rt.replica_keys),
                               prefix="warmup")
        for i, req in enumerate(tqdm(warmup, total=len(rt.replica_keys), desc="warm-up",
                                     disable=not progress, unit="req")):
            resp = rt.post(req)  # every replica's first call, outside the measurement
            if not resp.ok:
                raise RuntimeError(f"warm-up request {i} failed: {resp.error}")

        def on_answer(req: Request, resp: Response) -> dict:
            if "landcover" not in resp.outputs:
                return {}
            i = int(req.request_id.rsplit("-", 1)[1])
            idx = torch.arange(i * tiles, (i + 1) * tiles) % len(images)
            return {"landcover_correct": int((resp.outputs["landcover"].argmax(1)
                                              == labels[idx]).sum())}

        done = threading.Event()
        targets = kill_schedule(deploy, rt.services, kills)

        def killer() -> None:
            for key in targets:
                service = key.rsplit("@", 1)[0]
                others = [f"{service}@{n}" for n in deploy.get(service, []) if f"{service}@{n}" != key]
                # one failure at a time: wait until the service's other replicas are up again
                while others and set(others) & set(rt.router_stats()["down"]):
                    if done.is_set():
                        return
                    time.sleep(0.2)
                if done.is_set():
                    return
                k = rt.kill_during_request(key, timeout_s=120.0, cancel=done)
                if k is not None:
                    kill_log.append(k)

        kill_thread = threading.Thread(target=killer, daemon=True)
        kill_thread.start()
        result = run_load(rt.post, live_requests(images, tasks=w.tasks, sources=sources,
                                                 tiles=tiles, modality=source_modality,
                                                 n=requests),
                          clients=clients, duration_s=duration_s, on_answer=on_answer,
                          progress=progress, total=requests, desc="ray serve")
        done.set()
        kill_thread.join(timeout=30)
        execs = rt.executions()
        stats = rt.router_stats()
    finally:
        rt.shutdown()
    answered = {r["request_id"]: chain[r["modality"]] for r in result.rows if r["ok"]}
    checks = exactly_once(answered, {rid: execs["completed"].get(rid, {}) for rid in
                                     (r["request_id"] for r in result.rows)})
    load = summarise_load(result, checks, stats["runs"])
    summary = {
        "name": cfg.name, "runtime": "ray", "load": load,
        "exactly_once": not (load["lost"] or load["duplicated"] or load["not_executed"]
                             or load["unexpected_executions"]),
        "settings": {"requests": requests, "duration_s": duration_s, "clients": clients,
                     "tiles": tiles, "kills": kills, "max_replicas": max_replicas,
                     "num_cpus": num_cpus, "tasks": list(w.tasks), "modality": w.modality,
                     "warmup_requests": len(rt.replica_keys)},
        "kills_asked": kills, "kills": kill_log, "failovers": stats["failovers"],
        "hedges": stats["hedges"],
        "calls_run_again": sum(len(v) > 1 for by in execs["begun"].values() for v in by.values()),
        "results_handed_back": sum(len(v) for by in execs["recovered"].values()
                                   for v in by.values()),
        "deployment": deploy, "placement_solver": placement.solver,
        "timings_s": timings, "config": cfg.raw,
    }
    if any("landcover_correct" in r for r in result.rows):
        n_tiles = sum(r["tiles"] for r in result.rows if "landcover_correct" in r)
        summary["landcover_acc"] = sum(r.get("landcover_correct", 0)
                                       for r in result.rows) / n_tiles
    out = Path(out_dir)
    write_rows(result.rows, out, "ray_requests", meta={k: v for k, v in summary.items()
                                                       if k != "config"})
    (out / "ray_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
