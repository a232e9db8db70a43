"""Earliest-arrival transfers over the contact plan (store-and-forward, time-dependent Dijkstra).

A hop from ``u`` to ``v`` starts when ``u`` holds all the bytes and the link is up; it sends at
the link's (sample-and-hold) rate, pausing while the link is down and resuming in its next
contact; the bytes arrive one propagation delay after the last bit is sent. Arrival is
monotone in the ready time (first-in first-out), so Dijkstra on arrival time is exact.

This module reserves nothing: it answers for an empty network (``ContactPlan.transfer``).
:class:`research.orbit.network.NetworkState` runs the same search with a hop function that
sends only where links, transmitters and antennas are free, and books what it used.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from research.constants import C_KM_S
from research.orbit.isl import KIND_NAMES

if TYPE_CHECKING:
    from research.orbit.contact_plan import ContactPlan


class UnreachableError(LookupError):
    """No route delivers the bytes within the plan's horizon."""


@dataclass(frozen=True)
class Hop:
    """One store-and-forward hop, times in seconds from the plan epoch."""

    src: str
    dst: str
    kind: str
    t_ready: float
    t_start: float
    t_sent: float
    t_arrival: float
    wait_s: float
    transmit_s: float
    propagation_s: float
    energy_j: float


@dataclass(frozen=True)
class TransferResult:
    """Outcome of :meth:`ContactPlan.transfer`; unpacks as ``(t_arrival, path, energy_j)``.

    ``wait_s + transmit_s + propagation_s == t_arrival - t0`` (waiting includes pauses while a
    link is down in the middle of a hop, and, in a :class:`~research.orbit.network.NetworkState`,
    while a link, transmitter or antenna carries another transfer). ``delivered`` is False for a
    transfer a network state could not complete within the horizon: then ``t_arrival`` is
    ``inf``, ``path`` is the source alone and nothing was booked. ``beyond_horizon`` says the
    failure is only the plan's end (the bytes might arrive later, the plan cannot tell), as
    opposed to a failure known at ``t0`` (a full source).
    """

    t_arrival: float
    path: list[str]
    energy_j: float
    t0: float
    n_bytes: float
    wait_s: float
    transmit_s: float
    propagation_s: float
    hops: list[Hop] = field(default_factory=list)
    delivered: bool = True
    reason: str = ""
    beyond_horizon: bool = False

    def __iter__(self):
        return iter((self.t_arrival, self.path, self.energy_j))

    @classmethod
    def undelivered(cls, src: str | Sequence[str], n_bytes: float, t0: float, reason: str,
                    beyond_horizon: bool = False) -> TransferResult:
        """A transfer that did not arrive: ``inf`` arrival, the (first) source alone, nothing
        booked, and why (``beyond_horizon``: because the plan ends first)."""
        nan = math.nan
        first = src if isinstance(src, str) else src[0]
        return cls(math.inf, [first], 0.0, t0, float(n_bytes), nan, nan, nan, [],
                   delivered=False, reason=reason, beyond_horizon=beyond_horizon)

    @property
    def latency_s(self) -> float:
        return self.t_arrival - self.t0


def hop_timing(plan: ContactPlan, link: int, forward: bool, t_ready: float, bits: float,
               limit: float = math.inf) -> tuple[float, float, float, float, float] | None:
    """``(t_start, t_sent, t_arrival, transmit_s, delay_s)`` of one hop, or ``None`` if it cannot
    finish within the horizon, or before ``limit`` (a bound the caller already beats)."""
    wb, we = int(plan.link_wbeg[link]), int(plan.link_wend[link])
    w = wb + int(np.searchsorted(plan.win_end[wb:we], t_ready, side="right"))
    remaining = bits
    tx = 0.0
    t_start: float | None = None
    while w < we:
        s = max(t_ready, float(plan.win_start[w]))
        if s >= limit:
            return None
        bounds, rates, cum, act = plan.window_profile(w, forward)
        j = min(max(int(np.searchsorted(bounds, s, side="right")) - 1, 0), len(rates) - 1)
        cap_s = cum[j] + rates[j] * (s - bounds[j])
        if cum[-1] > cap_s:  # some capacity left in this window after s
            act_s = act[j] + (s - bounds[j] if rates[j] > 0 else 0.0)
            if t_start is None:  # the first instant with a non-zero rate
                k = j + int(np.argmax(rates[j:] > 0))
                t_start = s if k == j else float(bounds[k])
            if remaining <= 0:  # nothing to send: the hop completes when the link opens
                f = t_start
                break
            target = cap_s + remaining
            if target <= cum[-1]:
                i = min(max(int(np.searchsorted(cum, target, side="left")) - 1, 0),
                        len(rates) - 1)
                f = float(bounds[i] + (target - cum[i]) / rates[i])
                tx += act[i] + (f - bounds[i]) - act_s
                break
            remaining = target - cum[-1]
            tx += act[-1] - act_s
        w += 1
    else:
        return None
    s_idx = plan._sample(w, min(f, float(plan.win_end[w]) - 1e-9))
    delay = float(plan.range_km[s_idx]) / C_KM_S
    return float(t_start), f, f + delay, tx, delay


HopTiming = Callable[[int, bool, int, int, float, float, float], tuple | None]
"""``(link, forward, u, v, t_ready, bits, limit) -> (t_start, t_sent, t_arrival, transmit_s,
delay_s, ...)`` or ``None``: how one hop would go (extra items ride along to the caller);
``None`` too when it cannot arrive before ``limit``, a time some target is already reached by."""


def check_bytes(n_bytes: float) -> float:
    """``n_bytes`` as a float, or a ValueError naming it."""
    if not (isinstance(n_bytes, (int, float, np.integer, np.floating))
            and not isinstance(n_bytes, bool) and math.isfinite(n_bytes) and n_bytes >= 0):
        raise ValueError(f"n_bytes must be a finite number >= 0, got {n_bytes!r}")
    return float(n_bytes)


def node_indices(plan: ContactPlan, nodes: str | Sequence[str], what: str) -> list[int]:
    """Plan indices of one node or several (a KeyError names an unknown one)."""
    out = [plan.index(n) for n in ([nodes] if isinstance(nodes, str) else nodes)]
    if not out:
        raise ValueError(f"{what} must name at least one node")
    return out


def search(plan: ContactPlan, sources: list[int], targets: set[int], t0: float, bits: float,
           hop: HopTiming, *, relay_via_stations: bool = False,
           excluded: Collection[int] = (), every_target: bool = False
           ) -> tuple[int, dict[int, float], dict]:
    """Time-dependent Dijkstra: ``(reached target or -1, best arrival per node, predecessors)``.

    ``prev[v] = (u, link, forward, t_ready, timing)`` with ``timing`` what ``hop`` returned.
    Nodes in ``excluded`` are never entered (e.g. relays whose storage is full). With
    ``every_target`` the search does not stop at the first target: ``best`` then holds the
    earliest arrival at every reachable target (one search instead of one per target).
    """
    n_sat = len(plan.satellites)
    bound = math.inf  # earliest tentative arrival at any target: no hop after it can help
    best = dict.fromkeys(sources, t0)
    prev: dict[int, tuple[int, int, bool, float, tuple]] = {}
    starts = set(sources)
    heap = [(t0, i) for i in sorted(starts)]
    done: set[int] = set()
    while heap:
        t, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        if u in targets and not every_target:  # popped first: the earliest among the targets
            return u, best, prev
        if u >= n_sat and u not in starts and not relay_via_stations:
            continue
        for link, fwd, v in plan.adjacency(u):
            if v in done or v in excluded or (v >= n_sat and v not in targets
                                              and not relay_via_stations):
                continue
            timing = hop(link, fwd, u, v, t, bits, bound)
            if timing is None:
                continue
            if timing[2] < best.get(v, math.inf):
                best[v] = timing[2]
                prev[v] = (u, link, fwd, t, timing)
                heapq.heappush(heap, (timing[2], v))
                if v in targets and not every_target:
                    bound = min(bound, timing[2])
    return -1, {i: t for i, t in best.items() if i in done}, prev


def path_hops(plan: ContactPlan, i_dst: int, starts: Collection[int], prev: dict
              ) -> list[tuple[int, int, int, bool, float, tuple]]:
    """``(u, v, link, forward, t_ready, timing)`` of each hop from a source to ``i_dst``."""
    out = []
    v = i_dst
    while v not in starts:  # a start is never re-entered: nothing arrives before t0
        u, link, fwd, t_ready, timing = prev[v]
        out.append((u, v, link, fwd, t_ready, timing))
        v = u
    out.reverse()
    return out


def assemble(plan: ContactPlan, legs: list[tuple[int, int, int, bool, float, tuple]],
             t0: float, n_bytes: float) -> TransferResult:
    """The :class:`TransferResult` of a found path."""
    hops: list[Hop] = []
    for u, v, link, fwd, t_ready, (t_start, t_sent, t_arr, tx, delay, *_) in legs:
        power = plan.model_for(link, fwd).tx_power_w
        hops.append(Hop(plan.nodes[u], plan.nodes[v], KIND_NAMES[int(plan.link_kind[link])],
                        t_ready, t_start, t_sent, t_arr, (t_sent - t_ready) - tx, tx, delay,
                        power * tx))
    path = [hops[0].src] + [h.dst for h in hops]
    return TransferResult(
        t_arrival=hops[-1].t_arrival, path=path, energy_j=sum(h.energy_j for h in hops), t0=t0,
        n_bytes=float(n_bytes), wait_s=sum(h.wait_s for h in hops),
        transmit_s=sum(h.transmit_s for h in hops),
        propagation_s=sum(h.propagation_s for h in hops), hops=hops,
    )


def unreachable(src, dst, n_bytes: float, t0: float, plan: ContactPlan) -> UnreachableError:
    return UnreachableError(
        f"no route from {src} to {dst} delivers {n_bytes} bytes between t0={t0} s and the "
        f"plan horizon {plan.horizon_s} s"
    )


def earliest_transfer(plan: ContactPlan, src: str | Sequence[str], dst: str | Sequence[str],
                      n_bytes: float, t0: float, *, relay_via_stations: bool = False
                      ) -> TransferResult:
    """See :meth:`ContactPlan.transfer`."""
    n_bytes = check_bytes(n_bytes)
    t0 = plan._check_t(t0)
    sources = node_indices(plan, src, "src")
    targets = set(node_indices(plan, dst, "dst"))
    already = [i for i in sources if i in targets]
    if already:
        return TransferResult(t0, [plan.nodes[already[0]]], 0.0, t0, n_bytes, 0.0, 0.0, 0.0, [])

    def hop(link: int, fwd: bool, u: int, v: int, t: float, bits: float, limit: float):
        return hop_timing(plan, link, fwd, t, bits, limit)

    i_dst, _, prev = search(plan, sources, targets, t0, 8.0 * n_bytes, hop,
                            relay_via_stations=relay_via_stations)
    if i_dst < 0:
        raise unreachable(src, dst, n_bytes, t0, plan)
    return assemble(plan, path_hops(plan, i_dst, set(sources), prev), t0, n_bytes)
