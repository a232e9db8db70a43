"""Discrete-event simulation of requests walking their chains over the contact plan.

Each request is a route of steps: compute ``flops`` on a node, then send ``out_bytes`` to the
next step's node (or, after the last step, to the ground). Compute is FIFO per node (one
accelerator per node; a request waits while earlier ones run) and takes the node's compute
profile time. Transfers are booked on a :class:`~research.orbit.network.NetworkState` owned by
the simulation (a fresh one per scheme, so schemes compare on the same empty network): each is
sent when its event is popped, so in time order, and waits first come first served for busy link
directions, downlink transmitters, station antennas and storage (``network: capacity:
unlimited`` books nothing: the earlier no-contention model). Raw-image downlink thus pays for
the antenna and transmitter it occupies, for as long as it occupies them. A request that
finishes after its deadline, or whose transfer cannot be delivered within the plan, is reported
as missed (with its reason), never dropped.

Each request's :class:`Outcome` is a row in the shared ledger vocabulary of
:mod:`research.records`: bytes per link type, energy by where it is spent and latency split by
cause (on-board / ground compute, queueing for a busy accelerator, a contact or a busy link,
transmitter or antenna, transmission, propagation), whose parts add up to ``latency_s`` for
every delivered request.

Four route builders serve the same requests: :func:`microservice_routes` (placed replicas;
ground stages go to the ground pool), :func:`onboard_shared_routes` (one shared encoder with
every head on the capturing satellite: the strong on-board baseline), :func:`monolithic_routes`
(one full model per task on board: the weak one, kept for reference) and :func:`ground_routes`
(downlink the tiles, raw or in an image format of measured size, and infer on the ground).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from research.orbit.network import NetworkState
from research.records import BYTES_FIELDS, ENERGY_FIELDS, LATENCY_FIELDS, check_latency
from research.serving.modalities import get_modality
from research.serving.placement import Demand, Node, Placement, PlacementProblem
from research.serving.routing import GROUND, Hop, Network

__all__ = ["Outcome", "RouteChooser", "SimRequest", "Step", "ground_routes", "make_requests",
           "microservice_routes", "monolithic_routes", "onboard_shared_routes", "raw_bytes", "simulate", "summarise"]


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
    """One request's row in the ledger (times in seconds, energy in joules, bytes per link type).

    Names follow :mod:`research.records`. ``queue_s``: waiting for a busy accelerator (FIFO
    compute), for a contact or for a busy link direction, transmitter or station antenna;
    ``return_s`` is always 0 (the answer ends on the ground). ``energy_onboard_transmit_j``: hops
    sent by satellites (downlink, ISL); ``energy_ground_j``: ground compute. As in eval and fed, the stations' own transmissions
    (uplink) are booked in no energy field (their bytes are in ``bytes_uplink``). ``option``: the
    route that answered (the scheme itself, or the one a per-request policy chose).
    """

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
    onboard_compute_s: float = 0.0
    queue_s: float = 0.0
    transmit_s: float = 0.0
    propagation_s: float = 0.0
    ground_compute_s: float = 0.0
    return_s: float = 0.0
    onboard_flops: float = 0.0
    ground_flops: float = 0.0
    energy_onboard_compute_j: float = 0.0
    energy_onboard_transmit_j: float = 0.0
    energy_ground_j: float = 0.0
    bytes_downlink: float = 0.0
    bytes_uplink: float = 0.0
    bytes_isl: float = 0.0
    path: str = ""
    tiles: int = 1
    modality: str = "rgb"
    option: str = ""

    def row(self) -> dict:
        return asdict(self)


def raw_bytes(modality: str) -> int:
    """Bytes of one raw tile of ``modality`` as the satellite holds it."""
    return get_modality(modality).raw_bytes


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
    """Embedder (and codec encoder) on the source, then each stage where the epoch's placement
    sends it."""
    routes = []
    for r in requests:
        pl = placements[min(int(r.capture_s // epoch_s), len(placements) - 1)]
        d = p.demands[r.demand]
        tok = p.payload_bytes(r.modality, r.tiles)
        steps = [Step(r.source, _flops(p, p.source_services(r.modality), r.tiles), tok, "embed")]
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


def onboard_shared_routes(p: PlacementProblem, requests: Sequence[SimRequest]
                          ) -> list[list[Step]]:
    """The strong on-board baseline: one shared encoder with every task head on the capturing
    satellite (embedder and encoder once per capture, then each head); only results go down."""
    routes = []
    for r in requests:
        d = p.demands[r.demand]
        services = [p.embedders[r.modality], *p.stages, *(p.heads[t] for t in r.tasks)]
        routes.append([Step(r.source, _flops(p, services, r.tiles), p.result_bytes(d),
                            "onboard_shared")])
    return routes


def monolithic_routes(p: PlacementProblem, requests: Sequence[SimRequest]) -> list[list[Step]]:
    """The weak on-board baseline: every task runs its own full model (embedder, encoder, head)
    on the capturing satellite, so a capture asking three tasks runs the encoder three times."""
    routes = []
    for r in requests:
        d = p.demands[r.demand]
        services = [s for t in r.tasks
                    for s in (p.embedders[r.modality], *p.stages, p.heads[t])]
        routes.append([Step(r.source, _flops(p, services, r.tiles), p.result_bytes(d),
                            "monolithic")])
    return routes


def ground_routes(p: PlacementProblem, requests: Sequence[SimRequest],
                  tile_bytes: Mapping[str, float] | None = None) -> list[list[Step]]:
    """Tiles go down to the first reachable station; its server runs the shared chain.

    ``tile_bytes``: bytes of one tile per modality as sent (measured JPEG sizes, say); default
    the raw tile (:func:`raw_bytes`). Encoding on board is not charged (a JPEG encoder is
    hardware on such satellites)."""
    routes = []
    for r in requests:
        per_tile = raw_bytes(r.modality) if tile_bytes is None else tile_bytes[r.modality]
        services = [p.embedders[r.modality], *p.stages, *(p.heads[t] for t in r.tasks)]
        routes.append([Step(r.source, 0.0, per_tile * r.tiles, "downlink"),
                       Step(GROUND, _flops(p, services, r.tiles), 0.0, "ground")])
    return routes


class RouteChooser(Protocol):
    """Picks each request's route when it is captured (a per-request policy,
    :class:`research.serving.policy.PolicyRouter`); every route starts on the capturing
    satellite."""

    def route(self, i: int, accel_free_at: float) -> tuple[str, Sequence[Step]]:
        """``(option name, steps)`` for request ``i``; ``accel_free_at``: when its satellite's
        accelerator finishes the work already queued."""
        ...

    def sent(self, i: int, t_free: float | None) -> None:
        """Request ``i``'s first transfer off its satellite has been sent by ``t_free``
        (``None``: not delivered)."""
        ...


def simulate(net: Network, nodes: dict[str, Node], requests: Sequence[SimRequest],
             routes: Sequence[Sequence[Step]] | RouteChooser, scheme: str,
             state: NetworkState | None = None) -> list[Outcome]:
    """Run every request along its route; returns one :class:`Outcome` per request, in order.

    ``routes``: one route per request, or a :class:`RouteChooser` asked for each request's
    route when its capture is popped (in time order, knowing the satellite's accelerator queue)
    and told when its first transfer has left. Transfers are booked on ``state`` (default: a
    fresh ``net.new_state()``), each when its event is popped from the time-ordered queue.
    """
    state = net.new_state() if state is None else state
    chooser = routes if hasattr(routes, "route") else None
    out = [Outcome(r.request_id, scheme, r.source, "+".join(r.tasks), r.capture_s, r.deadline_s,
                   tiles=r.tiles, modality=r.modality, option=scheme) for r in requests]
    chosen: list[Sequence[Step]] = ([()] * len(requests) if chooser is not None
                                    else list(routes))
    if len(chosen) != len(requests):
        raise ValueError(f"{scheme}: {len(chosen)} routes for {len(requests)} requests")
    free: dict[str, float] = {}
    told: set[int] = set()
    trail: list[list[str]] = [[] for _ in requests]
    heap: list[tuple[float, int, int, int, str, str]] = []
    seq = 0
    for i, r in enumerate(requests):
        heapq.heappush(heap, (r.capture_s, seq, i, 0, "compute",
                              r.source if chooser is not None else chosen[i][0].node))
        seq += 1
    while heap:
        t, _, i, k, what, node = heapq.heappop(heap)
        if chooser is not None and k == 0 and what == "compute":
            out[i].option, chosen[i] = chooser.route(i, free.get(node, 0.0))
            if chosen[i][0].node != node:
                raise ValueError(f"{scheme}: request {requests[i].request_id}'s route starts on "
                                 f"{chosen[i][0].node}, not on its satellite {node}")
        o, step, route = out[i], chosen[i][k], chosen[i]
        if what == "compute":
            start = max(t, free.get(node, 0.0))
            prof = nodes[node]
            dur = prof.seconds(step.flops)
            free[node] = start + dur
            o.queue_s += start - t
            if prof.on_board:
                o.onboard_compute_s += dur
                o.onboard_flops += step.flops
                o.energy_onboard_compute_j += prof.profile.energy_j(step.flops)
            else:
                o.ground_compute_s += dur
                o.ground_flops += step.flops
                o.energy_ground_j += prof.profile.energy_j(step.flops)
            trail[i].append(node)
            heapq.heappush(heap, (start + dur, seq, i, k, "send", node))
            seq += 1
            continue
        last = k == len(route) - 1
        dst = GROUND if last else route[k + 1].node
        hop = net.send(state, node, dst, max(step.out_bytes, 1.0), t)  # t: popped in time order
        if chooser is not None and i not in told and (hop.links or not hop.delivered):
            told.add(i)  # the first transfer that leaves the capturing satellite
            chooser.sent(i, hop.links[0].t_sent if hop.delivered else None)
        if not hop.delivered:
            o.reason = f"unreachable: {node} -> {dst}: {hop.reason}"
            o.path = ">".join(trail[i])
            continue
        landed = hop.path[-1]
        o.queue_s += hop.wait_s
        o.transmit_s += hop.transmit_s
        o.propagation_s += hop.propagation_s
        _book_links(o, hop, step.out_bytes, net)
        if last:
            o.done_s = hop.t_arrival
            o.latency_s = hop.t_arrival - o.capture_s
            o.missed = hop.t_arrival > o.deadline_s
            o.reason = "deadline" if o.missed else ""
            o.path = ">".join([*trail[i], landed] if landed != node else trail[i])
            check_latency(o, f"{scheme} request {o.request_id}")
        else:
            nxt = landed if dst == GROUND else dst
            heapq.heappush(heap, (hop.t_arrival, seq, i, k + 1, "compute", nxt))
            seq += 1
    return out


def _book_links(o: Outcome, hop: Hop, n_bytes: float, net: Network) -> None:
    """Bytes per link type; transmit energy of the hops that satellites send (a station's uplink
    transmitter is not on board, and ``energy_ground_j`` is ground compute only)."""
    for link in hop.links:
        from_station = net.plan.is_station(link.src)
        if link.kind != "ground":
            o.bytes_isl += n_bytes
        elif from_station:
            o.bytes_uplink += n_bytes
        else:
            o.bytes_downlink += n_bytes
        if not from_station:
            o.energy_onboard_transmit_j += link.energy_j


def percentile(values: np.ndarray, q: float) -> float:
    """numpy's linear percentile, with undelivered requests (inf) counted as infinitely late:
    a percentile that interpolates towards one is inf, one that lands exactly on a finite value
    is that value (numpy would give NaN from 0 * inf)."""
    if not len(values):
        return math.nan
    ordered = np.sort(values)
    pos = q / 100 * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if pos == lo:
        return float(ordered[lo])
    if not math.isfinite(ordered[hi]):
        return math.inf
    return float(ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo]))


def summarise(outcomes: Sequence[Outcome], onboard_memory: dict[str, int]) -> dict:
    """Headline numbers of one scheme: latency percentiles, misses, memory, compute, energy.

    FLOPs are totals over the requests; the energy and bytes fields (:mod:`research.records`
    names) are means per request, ``energy_j`` their sum, and ``mean_<part>`` the latency parts
    averaged over delivered requests (as :func:`research.eval.ledger.summarise` reports them).
    """
    lat = np.array([o.latency_s for o in outcomes], dtype=float)
    finite = lat[np.isfinite(lat)]
    done = [o for o in outcomes if math.isfinite(o.latency_s)]

    def pct(q: float) -> float:
        return percentile(lat, q)

    def total(f: str) -> float:
        return float(sum(getattr(o, f) for o in outcomes))

    def mean(f: str, group: Sequence[Outcome] = outcomes) -> float:
        return float(np.mean([getattr(o, f) for o in group])) if group else math.nan

    return {
        "requests": len(outcomes),
        "p50_latency_s": pct(50),
        "p95_latency_s": pct(95),
        "mean_latency_s": float(finite.mean()) if len(finite) else math.nan,
        "missed": int(sum(o.missed for o in outcomes)),
        "tiles": int(sum(o.tiles for o in outcomes)),
        "delivered_tiles": int(sum(o.tiles for o in outcomes if not o.missed)),
        "delivered_fraction": (float(np.mean([not o.missed for o in outcomes]))
                               if outcomes else math.nan),
        "unreachable": int(sum(o.reason.startswith("unreachable") for o in outcomes)),
        "onboard_memory_bytes": int(sum(onboard_memory.values())),
        "max_satellite_memory_bytes": int(max(onboard_memory.values(), default=0)),
        "onboard_flops": total("onboard_flops"),
        "ground_flops": total("ground_flops"),
        **{f: mean(f) for f in ENERGY_FIELDS},
        "energy_j": float(sum(mean(f) for f in ENERGY_FIELDS)),
        **{f: mean(f) for f in BYTES_FIELDS},
        **{f"mean_{f}": mean(f, done) for f in LATENCY_FIELDS},
    }
