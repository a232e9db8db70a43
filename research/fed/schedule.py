"""Satellite-to-ground transfer scheduling: a max-flow over the topology at each instant.

At a time step the visible satellite/station pairs form a flow network: source -> satellite
(its backlog), satellite -> station (rate x step), station -> sink (one antenna: its best rate
x step), and, with intra-orbit sharing, satellite <-> satellite over intra-plane ISLs, so a
satellite out of contact hands its bytes to a plane neighbour that is in contact. networkx's
max-flow decides what every contact carries; no edge ever carries more than its capacity.
The ablation replaces it by a greedy rule (each satellite takes its best station, first come
first served), on the same capacities.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx

from research.fed.ledger import Accounting, Track
from research.fed.network import FedNetwork

SRC, SINK = "_source", "_sink"


@dataclass
class Assignment:
    """What one step carries: bytes per downlink contact, per ISL, and cleared per origin."""

    down: dict[tuple[str, str], int] = field(default_factory=dict)
    isl: dict[tuple[str, str], int] = field(default_factory=dict)
    cleared: dict[str, int] = field(default_factory=dict)


def maxflow_assignment(pairs: Sequence[tuple[str, str, float]], backlog: dict[str, int],
                       window_s: float, isl: Sequence[tuple[str, str, float]] = ()
                       ) -> Assignment:
    """Max-flow assignment of ``backlog`` bytes to the contacts ``pairs`` over ``window_s``."""
    g = nx.DiGraph()
    for sat, b in backlog.items():
        if b > 0:
            g.add_edge(SRC, ("s", sat), capacity=int(b))
    antenna: dict[str, int] = {}
    for sat, st, rate in pairs:
        cap = int(rate * window_s / 8)
        g.add_edge(("s", sat), ("g", st), capacity=cap)
        antenna[st] = max(antenna.get(st, 0), cap)
    for st, cap in antenna.items():
        g.add_edge(("g", st), SINK, capacity=cap)
    for a, b, rate in isl:
        g.add_edge(("s", a), ("s", b), capacity=int(rate * window_s / 8))
    out = Assignment()
    if SRC not in g or SINK not in g:
        return out
    _, flow = nx.maximum_flow(g, SRC, SINK)
    for (_, sat), f in flow[SRC].items():
        if f > 0:
            out.cleared[sat] = int(f)
    for u, targets in flow.items():
        if not isinstance(u, tuple):
            continue
        for v, f in targets.items():
            if f <= 0:
                continue
            if v[0] == "g":
                out.down[(u[1], v[1])] = int(f)
            elif v[0] == "s":
                out.isl[(u[1], v[1])] = int(f)
    return out


def greedy_assignment(pairs: Sequence[tuple[str, str, float]], backlog: dict[str, int],
                      window_s: float, isl: Sequence[tuple[str, str, float]] = ()
                      ) -> Assignment:
    """Topology-blind rule: each satellite in contact uses its best-rate station, in id order.

    With ISLs, a carrier with capacity left takes bytes from the nearest plane neighbours (BFS
    over the ISLs, each hop within its capacity).
    """
    left = {s: int(b) for s, b in backlog.items() if b > 0}
    best: dict[str, tuple[str, int]] = {}
    antenna: dict[str, int] = {}
    for sat, st, rate in pairs:
        cap = int(rate * window_s / 8)
        antenna[st] = max(antenna.get(st, 0), cap)
        if sat not in best or cap > best[sat][1]:
            best[sat] = (st, cap)
    adj: dict[str, list[tuple[str, int]]] = {}
    isl_left: dict[tuple[str, str], int] = {}
    for a, b, rate in isl:
        adj.setdefault(b, []).append((a, int(rate * window_s / 8)))
        isl_left[(a, b)] = int(rate * window_s / 8)
    out = Assignment()
    for sat in sorted(best):
        st, cap = best[sat]
        room = min(cap, antenna[st])
        for origin, path in _nearest_first(sat, adj):
            take = min(room, left.get(origin, 0), *(isl_left[e] for e in path)) if path else \
                min(room, left.get(origin, 0))
            if take <= 0:
                continue
            for e in path:
                isl_left[e] -= take
                out.isl[e] = out.isl.get(e, 0) + take
            left[origin] -= take
            out.cleared[origin] = out.cleared.get(origin, 0) + take
            out.down[(sat, st)] = out.down.get((sat, st), 0) + take
            room -= take
            antenna[st] -= take
            if room <= 0:
                break
    return out


def _nearest_first(carrier: str, adj: dict[str, list[tuple[str, int]]]
                   ) -> list[tuple[str, list[tuple[str, str]]]]:
    """``(origin, ISL edges origin -> ... -> carrier)`` in BFS order, the carrier first."""
    seen = {carrier}
    order = [(carrier, [])]
    queue = deque(order)
    while queue:
        node, path = queue.popleft()
        for prev, _ in adj.get(node, []):
            if prev not in seen:
                seen.add(prev)
                item = (prev, [(prev, node), *path])
                order.append(item)
                queue.append(item)
    return order


def drain_to_ground(net: FedNetwork, ready: dict[str, Track], n_bytes: dict[str, float], *,
                    sharing: bool, maxflow: bool, acct: Accounting) -> dict[str, Track]:
    """Step through the plan until every satellite's bytes are on the ground.

    Satellites start at the first grid step after their ``ready`` time. Returns the track of
    each satellite at the arrival of its last byte; satellites whose bytes are still aloft at the
    horizon are missing from the result.
    """
    plan = net.plan
    step = plan.step_s
    rem = {s: int(math.ceil(b)) for s, b in n_bytes.items() if b > 0}
    done = {s: tr for s, tr in ready.items() if s not in rem}
    sent_s = dict.fromkeys(rem, 0.0)
    planes = {s: plan.plane_of(s) for s in ready}
    rule = maxflow_assignment if maxflow else greedy_assignment
    down_power = plan.models["downlink"].tx_power_w
    isl_power = plan.models["isl"].tx_power_w
    if not rem:
        return done
    k = int(math.ceil(min(ready[s].t for s in rem) / step - 1e-9))
    while rem and k * step < plan.horizon_s:
        t = k * step
        active = {s: b for s, b in rem.items() if ready[s].t <= t}
        if not active:
            k = int(math.ceil(min(ready[s].t for s in rem) / step - 1e-9))
            continue
        k += 1
        live_planes = {planes[s] for s in active}
        carriers = [s for s in ready if planes[s] in live_planes] if sharing else list(active)
        pairs = [p for p in net.ground_pairs(t) if p[0] in set(carriers)]
        if not pairs:
            continue
        isl = net.intra_plane_links(carriers, t) if sharing else []
        a = rule(pairs, active, step, isl)
        rates = {(s, g): r for s, g, r in pairs}
        busy = max((f * 8 / rates[e] for e, f in a.down.items()), default=0.0)
        delay = max((net.delay_s(s, g, t) for s, g in a.down), default=0.0)
        for (s, g), f in a.down.items():
            acct.book("downlink", f, s, down_power * f * 8 / rates[(s, g)])
        isl_rates = {(x, y): r for x, y, r in isl}
        for (x, y), f in a.isl.items():
            acct.book("isl_intra", f, x, isl_power * f * 8 / isl_rates[(x, y)])
        for s, f in a.cleared.items():
            rem[s] -= f
            sent_s[s] += busy
            if rem[s] <= 0:
                del rem[s]
                tr = ready[s].add("transmit_s", sent_s[s]).add("propagation_s", delay)
                done[s] = tr.wait_until(t + busy + delay)
    return done
