"""Network state: who is sending what, where, over the immutable contact plan.

The :class:`~research.orbit.contact_plan.ContactPlan` says when links exist and at what rate; a
:class:`NetworkState` made from it holds the **bookings** of one simulation (reset or copy it per
scheme). As in DTN contact graph routing, every transfer is booked exclusively, first come first
served, on what it uses:

- each **link direction** carries one transfer at a time;
- each satellite has ``downlink_transmitters`` (satellite -> ground) and ``isl_terminals`` (one
  outgoing ISL transfer each); each station has ``station_antennas``, used by downlinks and
  uplinks alike (one antenna tracks one pass);
- each satellite stores at most ``storage_bytes``: its own captures waiting to leave and bytes
  it relays for others, from the moment they start arriving until their last bit has left.

:meth:`NetworkState.send` finds the earliest arrival on the **residual** capacity (the same
time-dependent Dijkstra as :mod:`research.orbit.routing`, with a hop function that transmits only
in free time) and books it. A route whose relay would overflow is searched again with the bytes entering it only
once it has drained enough (or without it, if they never fit); a transfer that cannot finish within the horizon, or whose source cannot hold it, is
returned with ``delivered=False`` and a reason, and counted, never dropped silently.
Transfers must be issued in time order (the caller is the event loop).

``capacity="unlimited"`` is the earlier model, kept explicit and labelled: nothing is booked and
every transfer sees an empty network (concurrent transfers do not slow each other down).
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from research.constants import C_KM_S
from research.orbit.contact_plan import ContactPlan
from research.orbit.isl import KIND_GROUND
from research.orbit.occupancy import Occupancy
from research.orbit.routing import (
    TransferResult,
    assemble,
    check_bytes,
    hop_timing,
    node_indices,
    path_hops,
    search,
)

__all__ = ["CAPACITY_MODES", "NetworkResources", "NetworkState"]

CAPACITY_MODES = ("exclusive", "unlimited")


@dataclass(frozen=True)
class NetworkResources:
    """What each node can do at once, and how the network shares it.

    Attributes:
        capacity: ``exclusive`` (one transfer per link direction, transmitter and antenna at a
            time, FIFO) or ``unlimited`` (no bookings: the earlier model, for reproducing
            earlier numbers).
        downlink_transmitters: Concurrent satellite -> ground transfers per satellite (one
            X-band transmitter is typical of an EO satellite).
        isl_terminals: Concurrent outgoing ISL transfers per satellite (four optical terminals
            for a +Grid topology).
        station_antennas: Passes a station tracks at once (one dish each).
        storage_bytes: On-board mass memory per satellite for captures waiting to leave and
            relayed bytes. The default, 300 GB, is Sentinel-2's 2.4 Tbit solid-state mass memory
            (ESA Sentinel-2 User Handbook, 2015, section 2.2).
    """

    capacity: str = "exclusive"
    downlink_transmitters: int = 1
    isl_terminals: int = 4
    station_antennas: int = 1
    storage_bytes: float = 300e9

    def __post_init__(self) -> None:
        if self.capacity not in CAPACITY_MODES:
            raise ValueError(f"network capacity {self.capacity!r} is not one of "
                             f"{list(CAPACITY_MODES)}")
        for name in ("downlink_transmitters", "isl_terminals", "station_antennas"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"network {name} must be an integer >= 1, got {v!r}")
        v = self.storage_bytes
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"network storage_bytes must be a number > 0, got {v!r}")
        object.__setattr__(self, "storage_bytes", float(v))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, where: str = "network") -> NetworkResources:
        """Validate a config mapping; an unknown key names itself and the valid ones."""
        d = dict(d or {})
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {valid}")
        try:
            return cls(**d)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    def to_dict(self) -> dict:
        return asdict(self)


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


class NetworkState:
    """Bookings over one contact plan (see the module docstring).

    Args:
        plan: The contact plan (never modified; several states may share it).
        resources: Transmitters, antennas, storage and the capacity mode.
    """

    def __init__(self, plan: ContactPlan, resources: NetworkResources | None = None) -> None:
        self.plan = plan
        self.resources = resources or NetworkResources()
        self.reset()

    @property
    def exclusive(self) -> bool:
        return self.resources.capacity == "exclusive"

    def reset(self) -> None:
        """Forget every booking (a fresh network for the next scheme)."""
        self._occ: dict[tuple, Occupancy] = {}
        self._hop_occ: dict[tuple[int, bool], list[Occupancy]] = {}
        self._link_windows: dict[int, tuple[int, list[float]]] = {}
        self._profiles: dict[tuple[int, bool], tuple] = {}
        self._clock = -math.inf
        self.offered_bytes = 0.0
        self.delivered_bytes = 0.0
        self.undelivered_bytes = 0.0
        self.transfers = 0
        self.undelivered = 0

    def copy(self) -> NetworkState:
        """An independent copy of the bookings (the plan is shared)."""
        new = copy.copy(self)
        new._occ = copy.deepcopy(self._occ)
        new._hop_occ = {}
        return new

    # ------------------------------------------------------------------ resources
    def _occupancy(self, key: tuple, capacity: float) -> Occupancy:
        occ = self._occ.get(key)
        if occ is None:
            occ = self._occ[key] = Occupancy(capacity)
        return occ

    def storage(self, node: str) -> Occupancy:
        """Bytes held on board ``node`` over time (its own captures and relayed bytes)."""
        return self._occupancy(("store", self.plan.index(node)), self.resources.storage_bytes)

    def _hop_resources(self, link: int, fwd: bool, u: int, v: int) -> list[Occupancy]:
        key = (link, fwd)
        occs = self._hop_occ.get(key)
        if occs is not None:
            return occs
        r = self.resources
        occs = [self._occupancy(("link", link, fwd), 1)]
        if self.plan.link_kind[link] == KIND_GROUND:
            sat, station = (u, v) if fwd else (v, u)
            occs.append(self._occupancy(("antenna", station), r.station_antennas))
            if fwd:
                occs.append(self._occupancy(("transmitter", sat), r.downlink_transmitters))
        elif r.isl_terminals < self._isl_degree(u):  # otherwise every ISL has its own terminal
            occs.append(self._occupancy(("isl", u), r.isl_terminals))
        self._hop_occ[key] = occs
        return occs

    def _isl_degree(self, node: int) -> int:
        return sum(1 for link, _, _ in self.plan.adjacency(node)
                   if self.plan.link_kind[link] != KIND_GROUND)

    def _windows(self, link: int) -> tuple[int, list[float]]:
        """First window index of ``link`` and its windows' end times (a list for bisect)."""
        got = self._link_windows.get(link)
        if got is None:
            wb, we = int(self.plan.link_wbeg[link]), int(self.plan.link_wend[link])
            got = self._link_windows[link] = (wb, self.plan.win_end[wb:we].tolist())
        return got

    def _profile(self, w: int, fwd: bool) -> tuple:
        """The plan's window profile as lists (bisect on a short list beats numpy calls), and
        its peak rate."""
        key = (w, fwd)
        prof = self._profiles.get(key)
        if prof is None:
            bounds, rates, cum, act = self.plan.window_profile(w, fwd)
            prof = self._profiles[key] = (bounds.tolist(), rates.tolist(), cum.tolist(),
                                          act.tolist(), float(rates.max()))
        return prof

    # ------------------------------------------------------------------ one hop on free time
    def _hop(self, link: int, fwd: bool, u: int, v: int, t_ready: float, bits: float,
             limit: float = math.inf):
        """Like :func:`research.orbit.routing.hop_timing`, sending only while all is free.

        Returns ``(t_start, t_sent, t_arrival, transmit_s, delay_s, segments)`` with the
        ``[start, end)`` intervals to book, or ``None`` if the horizon (or ``limit``) comes
        first.
        """
        plan = self.plan
        occs = self._hop_resources(link, fwd, u, v)
        wb, ends = self._windows(link)
        k = bisect_right(ends, t_ready)
        remaining, tx = bits, 0.0
        t_start: float | None = None
        segments: list[tuple[float, float]] = []
        f: float | None = None
        w = wb + k
        while k < len(ends) and f is None:
            w = wb + k
            s, e = max(t_ready, float(plan.win_start[w])), ends[k]
            bounds, rates, cum, act, peak = self._profile(w, fwd)
            last = len(rates) - 1
            # Look at the bookings a piece at a time (a long ISL window may hold thousands):
            # first the time the bytes would take at the peak rate, doubling while they wait.
            span = max(60.0, 2.0 * remaining / peak) if peak > 0 else e - s
            while s < e and f is None:
                if s >= limit:
                    return None
                b = min(e, s + span)
                blocked = [iv for o in occs for iv in o.blocked(s, b)]
                if blocked:
                    free, a = [], s
                    for b0, b1 in _merge(blocked):
                        if b0 > a:
                            free.append((a, b0))
                        a = max(a, b1)
                    if a < b:
                        free.append((a, b))
                else:
                    free = [(s, b)]
                for fs, fe in free:
                    j0 = min(max(bisect_right(bounds, fs) - 1, 0), last)
                    j1 = min(max(bisect_right(bounds, fe) - 1, 0), last)
                    c0 = cum[j0] + rates[j0] * (fs - bounds[j0])
                    c1 = cum[j1] + rates[j1] * (fe - bounds[j1])
                    if c1 <= c0:
                        continue
                    a0 = act[j0] + (fs - bounds[j0] if rates[j0] > 0 else 0.0)
                    j = j0
                    while rates[j] <= 0:  # book from the first instant with a non-zero rate
                        j += 1
                    fs = fs if j == j0 else bounds[j]
                    if t_start is None:
                        t_start = fs
                    if remaining <= 0:
                        f = t_start
                        break
                    if c1 - c0 >= remaining:
                        target = c0 + remaining
                        i = min(max(bisect_left(cum, target) - 1, 0), last)
                        # never past the free piece's end, which rounding could overshoot
                        # into the next booking by a few ulps
                        f = min(bounds[i] + (target - cum[i]) / rates[i], fe)
                        tx += act[i] + (f - bounds[i]) - a0
                        segments.append((fs, f))
                        break
                    remaining -= c1 - c0
                    tx += act[j1] + (fe - bounds[j1] if rates[j1] > 0 else 0.0) - a0
                    if segments and segments[-1][1] == fs:  # one piece ended where this starts
                        segments[-1] = (segments[-1][0], fe)
                    else:
                        segments.append((fs, fe))
                s, span = b, 2.0 * span
            k += 1
        if f is None:
            return None
        s_idx = plan._sample(w, min(f, ends[w - wb] - 1e-9))
        delay = float(plan.range_km[s_idx]) / C_KM_S
        return float(t_start), float(f), f + delay, tx, delay, segments

    # ------------------------------------------------------------------ transfers
    def route(self, src: str | Sequence[str], dst: str | Sequence[str], n_bytes: float,
              t0: float, *, relay_via_stations: bool = False) -> TransferResult:
        """Earliest arrival on the residual capacity, without booking (a what-if query)."""
        return self._transfer(src, dst, n_bytes, t0, relay_via_stations, book=False)

    def _hop_timing(self):
        """The hop timing searches use: on the residual capacity when links carry one transfer
        at a time, else the plan's own."""
        if self.exclusive:
            return self._hop
        plan = self.plan

        def hop(link, fwd, u, v, t, b, limit):
            return hop_timing(plan, link, fwd, t, b, limit)

        return hop

    def arrivals(self, src: str | Sequence[str], dsts: Sequence[str], n_bytes: float, t0: float
                 ) -> dict[str, float]:
        """Earliest arrival of ``n_bytes`` from ``src`` (any of several: they share a terrestrial
        network) at each of ``dsts`` on the residual capacity (``inf``: not within the horizon):
        one what-if search instead of one :meth:`route` per destination. Unlike :meth:`route`
        it does not check storage on the source or relays, so it can be earlier where a full
        relay would make the bytes wait (the ring's choice of a root, a heuristic, uses it)."""
        plan = self.plan
        bits = 8.0 * check_bytes(n_bytes)
        t0 = plan._check_t(t0)
        sources = node_indices(plan, src, "src")
        targets = set(node_indices(plan, list(dsts), "dsts"))
        _, best, _ = search(plan, sources, targets, t0, bits, self._hop_timing(),
                            every_target=True)
        return {plan.nodes[i]: best.get(i, math.inf) for i in sorted(targets)}

    def send(self, src: str | Sequence[str], dst: str | Sequence[str], n_bytes: float,
             t0: float, *, relay_via_stations: bool = False) -> TransferResult:
        """Route ``n_bytes`` from ``src`` to ``dst`` at ``t0`` on the residual capacity, and book it.

        ``src`` / ``dst`` may list several nodes (e.g. every station: they share a terrestrial
        network). Returns a :class:`TransferResult`; ``delivered`` is False (with ``reason``)
        when the bytes cannot reach ``dst`` within the horizon or the source cannot hold them.
        ``t0`` must not be earlier than the previous call's.
        """
        return self._transfer(src, dst, n_bytes, t0, relay_via_stations, book=True)

    def _transfer(self, src, dst, n_bytes, t0, relay_via_stations: bool, book: bool
                  ) -> TransferResult:
        plan = self.plan
        n_bytes = check_bytes(n_bytes)
        t0 = plan._check_t(t0)
        sources = node_indices(plan, src, "src")
        targets = set(node_indices(plan, dst, "dst"))
        if book:
            if t0 < self._clock - 1e-9:
                raise ValueError(f"transfers must be issued in time order: t0={t0} s is before "
                                 f"the previous transfer's {self._clock} s")
            self._clock = t0
        already = [i for i in sources if i in targets]
        if already:
            return self._count(TransferResult(t0, [plan.nodes[already[0]]], 0.0, t0, n_bytes,
                                              0.0, 0.0, 0.0, []), book)
        bits = 8.0 * n_bytes
        hop = self._hop_timing()
        entry_after: dict[int, float] = {}  # relays that must drain before the bytes enter
        excluded: set[int] = set()

        def storage_hop(link, fwd, u, v, t, b, limit):
            return hop(link, fwd, u, v, max(t, entry_after.get(v, t)), b, limit)

        while True:
            i_dst, _, prev = search(plan, sources, targets, t0, bits,
                                    storage_hop if entry_after else hop,
                                    relay_via_stations=relay_via_stations, excluded=excluded)
            if i_dst < 0:
                lost = TransferResult.undelivered(
                    src, n_bytes, t0,
                    f"no route completes within the horizon ({plan.horizon_s:g} s)",
                    beyond_horizon=True)
                return self._count(lost, book)
            legs = path_hops(plan, i_dst, set(sources), prev)
            full = self._overflowing_relay(legs, n_bytes)
            if full < 0:
                break
            # Enter that relay only once it has room for good (its bookings all end).
            when = self._occupancy(("store", full), self.resources.storage_bytes).free_from(
                n_bytes)
            if math.isinf(when):
                excluded.add(full)
            else:
                entry_after[full] = when
        if self.exclusive and not self._source_fits(legs, n_bytes, t0):
            lost = TransferResult.undelivered(plan.nodes[legs[0][0]], n_bytes, t0,
                                              "source storage is full")
            return self._count(lost, book)
        result = assemble(plan, legs, t0, n_bytes)
        if book and self.exclusive:
            self._book(legs, n_bytes, t0)
        return self._count(result, book)

    def _holds(self, legs, t0: float) -> list[tuple[int, float, float]]:
        """``(node, from, until)``: bytes on board the source, then each relay (stations too)."""
        out = [(legs[0][0], t0, legs[0][5][1])]
        for (_, v, *_rest, timing), nxt in zip(legs[:-1], legs[1:], strict=True):
            out.append((v, timing[0], nxt[5][1]))
        return out

    def _fits(self, node: int, a: float, b: float, n_bytes: float) -> bool:
        """Whether satellite ``node`` can hold ``n_bytes`` more over ``[a, b)`` (stations can)."""
        if node >= len(self.plan.satellites):
            return True
        occ = self._occupancy(("store", node), self.resources.storage_bytes)
        return occ.peak(a, b) + n_bytes <= occ.capacity + 1e-9

    def _overflowing_relay(self, legs, n_bytes: float) -> int:
        if not self.exclusive:
            return -1
        for node, a, b in self._holds(legs, legs[0][4])[1:]:
            if not self._fits(node, a, b, n_bytes):
                return node
        return -1

    def _source_fits(self, legs, n_bytes: float, t0: float) -> bool:
        return self._fits(*self._holds(legs, t0)[0], n_bytes)

    def _book(self, legs, n_bytes: float, t0: float) -> None:
        for u, v, link, fwd, _, timing in legs:
            for occ in self._hop_resources(link, fwd, u, v):
                for a, b in timing[5]:
                    occ.add(a, b)
        for node, a, b in self._holds(legs, t0):
            if node < len(self.plan.satellites):
                self._occupancy(("store", node), self.resources.storage_bytes).add(a, b, n_bytes)

    def _count(self, result: TransferResult, book: bool) -> TransferResult:
        if book:
            self.transfers += 1
            self.offered_bytes += result.n_bytes
            if result.delivered:
                self.delivered_bytes += result.n_bytes
            else:
                self.undelivered += 1
                self.undelivered_bytes += result.n_bytes
        return result

    def summary(self) -> dict:
        """Counters for ledgers: transfers, bytes offered / delivered / undelivered, and the peak
        on-board storage (backlog plus relayed bytes) over the satellites that stored anything."""
        peaks = [occ.peak() for key, occ in self._occ.items() if key[0] == "store"]
        return {"capacity": self.resources.capacity, "transfers": self.transfers,
                "undelivered_transfers": self.undelivered, "offered_bytes": self.offered_bytes,
                "delivered_bytes": self.delivered_bytes,
                "undelivered_bytes": self.undelivered_bytes,
                "storage_peak_bytes_max": max(peaks, default=0.0),
                "storage_peak_bytes_mean": float(np.mean(peaks)) if peaks else 0.0}
