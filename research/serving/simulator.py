"""Discrete-event simulation of requests walking their chains over the contact plan.

Each request is a route of steps: compute ``flops`` on a node, then send ``out_bytes`` to the
next step's node (or, after the last step, to the ground). Compute is FIFO per node (one
accelerator per node; a request waits while earlier ones run) and takes the node's compute
profile time; transfers come from :class:`~research.serving.routing.Network`. Each ground station
receives one downlink at a time (approximately FIFO: a later downlink to a busy station is
shifted by the wait), so raw-image downlink pays for the antenna it occupies. A request that
finishes after its deadline, or cannot reach its next node within the plan, is reported as
missed (with its reason), never dropped.

Three schemes build routes for the same requests: :func:`microservice_routes` (placed replicas;
ground stages go to the ground pool),
:func:`monolithic_routes` (one full model per task on the capturing satellite) and
:func:`ground_routes` (downlink the raw images, infer on the ground server).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from research.serving.placement import Demand, Node, Placement, PlacementProblem
from research.serving.routing import GROUND, Network
from research.serving.schema import BANDS

__all__ = ["Outcome", "SimRequest", "Step", "ground_routes", "make_requests",
           "microservice_routes", "monolithic_routes", "raw_bytes", "simulate", "summarise"]


@dataclass(frozen=True)
class SimRequest:
    """A request as the simulator sees it (no pixels: sizes and FLOPs stand for them)."""

    request_id: str
    demand: int
    index: int
    source: str
    tasks: tuple[str, ...]
    capture_s: float
    deadline_s: float
    tiles: int
    modality: str = "rgb"


@dataclass(frozen=True)
class Step:
    """Compute ``flops`` on ``node`` (:data:`GROUND`: the station the bytes landed at), then send."""

    node: str
    flops: float
    out_bytes: float
    label: str = ""


@dataclass
class Outcome:
    """One request's record in the ledger (times in seconds, energy in joules)."""

    request_id: str
    scheme: str
    source: str
    tasks: str
    capture_s: float
    deadline_s: float
    done_s: float = math.inf
    latency_s: float = math.inf
    missed: bool = True
    reason: str = ""
    compute_s: float = 0.0
    queue_s: float = 0.0
    network_s: float = 0.0
    onboard_flops: float = 0.0
    ground_flops: float = 0.0
    onboard_energy_j: float = 0.0
    ground_energy_j: float = 0.0
    tx_energy_j: float = 0.0
    bytes_sent: float = 0.0
    bytes_down: float = 0.0
    path: str = ""

    def row(self) -> dict:
        return asdict(self)


def raw_bytes(modality: str, img_size: int = 64) -> int:
    """Bytes of one raw tile: RGB uint8, 13-band uint16 (Sentinel-2 L1C digital numbers)."""
    per_band = 1 if modality == "rgb" else 2
    return BANDS[modality] * img_size * img_size * per_band


def make_requests(demands: Sequence[Demand], horizon_s: float, deadline_s: float,
                  seed: int = 0) -> list[SimRequest]:
    """Poisson captures of every demand over ``[0, horizon_s)``, seeded, sorted by time."""
    rng = np.random.default_rng(seed)
    out: list[SimRequest] = []
    for di, d in enumerate(demands):
        t, i = float(rng.exponential(1.0 / d.rate_hz)), 0
        while t < horizon_s:
            out.append(SimRequest(f"{d.source}#{i}", di, i, d.source, d.tasks, t, t + deadline_s,
                                  d.tiles, d.modality))
            t += float(rng.exponential(1.0 / d.rate_hz))
            i += 1
    return sorted(out, key=lambda r: (r.capture_s, r.request_id))


def _flops(p: PlacementProblem, services: Sequence[str], tiles: int) -> float:
    return float(tiles * sum(p.flops[s] for s in services))


def microservice_routes(p: PlacementProblem, placements: Sequence[Placement], epoch_s: float,
                        requests: Sequence[SimRequest]) -> list[list[Step]]:
    """Embedder on the source, then each stage where the epoch's placement sends it."""
    routes = []
    for r in requests:
        pl = placements[min(int(r.capture_s // epoch_s), len(placements) - 1)]
        d = p.demands[r.demand]
        tok = p.token_bytes * r.tiles
        steps = [Step(r.source, _flops(p, [p.embedders[r.modality]], r.tiles), tok, "embed")]
        # Ground stations form one pool (terrestrial network): a ground stage runs at whichever
        # station the bytes reach first, as every station holds the ground replicas.
        nodes = [n if p.nodes[n].on_board else GROUND for n in pl.path(r.demand, r.index)]
        for k, n in enumerate(nodes):
            last = k == len(nodes) - 1
            out = p.result_bytes(d) if last else tok
            steps.append(Step(n, _flops(p, p.stage_services(d, k), r.tiles), out,
                              "+".join(p.stage_services(d, k))))
        routes.append(steps)
    return routes


def monolithic_routes(p: PlacementProblem, requests: Sequence[SimRequest]) -> list[list[Step]]:
    """Every task runs its own full model (embedder, encoder, head) on the capturing satellite."""
    routes = []
    for r in requests:
        d = p.demands[r.demand]
        services = [s for t in r.tasks
                    for s in (p.embedders[r.modality], *p.stages, p.heads[t])]
        routes.append([Step(r.source, _flops(p, services, r.tiles), p.result_bytes(d),
                            "monolithic")])
    return routes


def ground_routes(p: PlacementProblem, requests: Sequence[SimRequest],
                  img_size: int = 64) -> list[list[Step]]:
    """Raw tiles go down to the first reachable station; its server runs the shared chain."""
    routes = []
    for r in requests:
        services = [p.embedders[r.modality], *p.stages, *(p.heads[t] for t in r.tasks)]
        routes.append([Step(r.source, 0.0, raw_bytes(r.modality, img_size) * r.tiles, "downlink"),
                       Step(GROUND, _flops(p, services, r.tiles), 0.0, "ground")])
    return routes


def simulate(net: Network, nodes: dict[str, Node], requests: Sequence[SimRequest],
             routes: Sequence[Sequence[Step]], scheme: str,
             station_antennas: bool = True) -> list[Outcome]:
    """Run every request along its route; returns one :class:`Outcome` per request, in order."""
    out = [Outcome(r.request_id, scheme, r.source, "+".join(r.tasks), r.capture_s, r.deadline_s)
           for r in requests]
    free: dict[str, float] = {}
    rx_free: dict[str, float] = {}
    trail: list[list[str]] = [[] for _ in requests]
    heap: list[tuple[float, int, int, int, str, str]] = []
    seq = 0
    for i, (r, route) in enumerate(zip(requests, routes, strict=True)):
        heapq.heappush(heap, (r.capture_s, seq, i, 0, "compute", route[0].node))
        seq += 1
    while heap:
        t, _, i, k, what, node = heapq.heappop(heap)
        o, step, route = out[i], routes[i][k], routes[i]
        if what == "compute":
            start = max(t, free.get(node, 0.0))
            prof = nodes[node]
            dur = prof.seconds(step.flops)
            free[node] = start + dur
            o.queue_s += start - t
            o.compute_s += dur
            if prof.on_board:
                o.onboard_flops += step.flops
                o.onboard_energy_j += prof.profile.energy_j(step.flops)
            else:
                o.ground_flops += step.flops
                o.ground_energy_j += prof.profile.energy_j(step.flops)
            trail[i].append(node)
            heapq.heappush(heap, (start + dur, seq, i, k, "send", node))
            seq += 1
            continue
        last = k == len(route) - 1
        dst = GROUND if last else route[k + 1].node
        hop = net.transfer(node, dst, max(step.out_bytes, 1.0), t)
        if hop is None:
            o.reason = f"unreachable: {node} -> {dst} within the plan horizon"
            o.path = ">".join(trail[i])
            continue
        arrival = hop.t_arrival
        landed = hop.path[-1]
        if station_antennas and len(hop.path) > 1 and net.plan.is_station(landed):
            rx_start = max(hop.last_start_s, rx_free.get(landed, 0.0))
            arrival += rx_start - hop.last_start_s
            rx_free[landed] = rx_start + hop.last_transmit_s
            o.bytes_down += step.out_bytes
        o.network_s += arrival - t
        o.tx_energy_j += hop.energy_j
        o.bytes_sent += step.out_bytes * (len(hop.path) - 1)
        if last:
            o.done_s = arrival
            o.latency_s = arrival - o.capture_s
            o.missed = arrival > o.deadline_s
            o.reason = "deadline" if o.missed else ""
            o.path = ">".join([*trail[i], landed] if landed != node else trail[i])
        else:
            nxt = landed if dst == GROUND else dst
            heapq.heappush(heap, (arrival, seq, i, k + 1, "compute", nxt))
            seq += 1
    return out


def summarise(outcomes: Sequence[Outcome], onboard_memory: dict[str, int]) -> dict:
    """Headline numbers of one scheme: latency percentiles, misses, memory, compute, energy."""
    lat = np.array([o.latency_s for o in outcomes], dtype=float)
    finite = lat[np.isfinite(lat)]

    def pct(q: float) -> float:
        return float(np.percentile(lat, q)) if len(lat) else math.nan

    def total(f: str) -> float:
        return float(sum(getattr(o, f) for o in outcomes))

    return {
        "requests": len(outcomes),
        "p50_latency_s": pct(50),
        "p95_latency_s": pct(95),
        "mean_latency_s": float(finite.mean()) if len(finite) else math.nan,
        "missed": int(sum(o.missed for o in outcomes)),
        "unreachable": int(sum(o.reason.startswith("unreachable") for o in outcomes)),
        "onboard_memory_bytes": int(sum(onboard_memory.values())),
        "max_satellite_memory_bytes": int(max(onboard_memory.values(), default=0)),
        "onboard_flops": total("onboard_flops"),
        "ground_flops": total("ground_flops"),
        "onboard_energy_j": total("onboard_energy_j"),
        "tx_energy_j": total("tx_energy_j"),
        "ground_energy_j": total("ground_energy_j"),
        "bytes_sent": total("bytes_sent"),
        "bytes_down": total("bytes_down"),
        "mean_queue_s": total("queue_s") / max(len(outcomes), 1),
    }
