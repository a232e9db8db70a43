"""Moving bytes between service replicas over the contact plan.

A thin layer over :meth:`ContactPlan.transfer` (which does the store-and-forward routing): a hop to
the same node is free, "the ground" means the earliest-arriving station, unreachable transfers
come back as ``None`` rather than an exception, and repeated queries within one time bucket are
cached (placement asks the same pairs many times per epoch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from research.orbit import ContactPlan, UnreachableError
from research.orbit.routing import Hop as OrbitHop

__all__ = ["GROUND", "Hop", "Network"]

GROUND = "ground"
"""Destination meaning: whichever ground station the bytes reach first."""


@dataclass(frozen=True)
class Hop:
    """A resolved transfer: where it went, when it arrived and what it cost.

    ``wait_s + transmit_s + propagation_s == t_arrival - t_start``; ``links`` holds the orbit
    package's per-link hops (their ``kind`` and ``src`` tell downlink, uplink and ISL apart).
    """

    dst: str
    t_start: float
    t_arrival: float
    energy_j: float
    path: tuple[str, ...]
    last_transmit_s: float = 0.0
    last_start_s: float = 0.0
    wait_s: float = 0.0
    transmit_s: float = 0.0
    propagation_s: float = 0.0
    links: tuple[OrbitHop, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.t_arrival - self.t_start


class Network:
    """Transfers between nodes of one contact plan, with a cache for planning queries.

    Args:
        plan: the contact plan.
        cache_bucket_s: queries made with ``cached=True`` are rounded down to this bucket.
    """

    def __init__(self, plan: ContactPlan, cache_bucket_s: float = 60.0) -> None:
        self.plan = plan
        self.bucket = cache_bucket_s
        self._cache: dict[tuple, Hop | None] = {}

    def is_station(self, node: str) -> bool:
        return node == GROUND or self.plan.is_station(node)

    def transfer(self, src: str, dst: str, n_bytes: float, t0: float,
                 cached: bool = False) -> Hop | None:
        """Earliest arrival of ``n_bytes`` from ``src`` to ``dst`` (or :data:`GROUND`)."""
        if cached:
            t0 = math.floor(t0 / self.bucket) * self.bucket
            key = (src, dst, round(n_bytes), t0)
            if key not in self._cache:
                self._cache[key] = self.transfer(src, dst, n_bytes, t0)
            return self._cache[key]
        if src == dst or (dst == GROUND and self.plan.is_station(src)):
            return Hop(src, t0, t0, 0.0, (src,), 0.0, t0)
        if t0 >= self.plan.horizon_s:
            return None
        targets = self.plan.stations if dst == GROUND else dst  # stations: one search
        try:
            r = self.plan.transfer(src, targets, n_bytes, t0)
        except UnreachableError:
            return None
        last = r.hops[-1] if r.hops else None
        return Hop(r.path[-1], t0, r.t_arrival, r.energy_j, tuple(r.path),
                   last.transmit_s if last else 0.0, last.t_start if last else t0,
                   r.wait_s, r.transmit_s, r.propagation_s, tuple(r.hops))

    def seconds(self, src: str, dst: str, n_bytes: float, t0: float) -> float:
        """Cached transfer time for planning (``inf`` when unreachable)."""
        hop = self.transfer(src, dst, n_bytes, t0, cached=True)
        return math.inf if hop is None else hop.t_arrival - math.floor(t0 / self.bucket) * \
            self.bucket

    def nearby(self, node: str, t: float, hops: int = 1) -> list[str]:
        """Satellites within ``hops`` links of ``node`` at ``t`` (itself first)."""
        seen, frontier = [node], [node]
        for _ in range(hops):
            nxt = []
            for n in frontier:
                for m in self.plan.neighbours(n, t):
                    if m not in seen and not self.plan.is_station(m):
                        seen.append(m)
                        nxt.append(m)
            frontier = nxt
        return seen
