"""Moving bytes between service replicas over the contact plan.

Two kinds of query, with the same conventions (a hop to the same node is free, "the ground"
means whichever station the bytes reach first, in one search over all stations):

* :meth:`Network.send` books a transfer on a :class:`~research.orbit.network.NetworkState`
  (the simulation's own): first come first served on link directions, transmitters, station
  antennas and on-board storage, routed on the residual capacity. Transfers must be sent in time
  order (the simulator sends each one when its event is popped). A transfer that cannot be
  delivered comes back with ``delivered=False`` and the reason.
* :meth:`Network.transfer` / :meth:`Network.seconds` are what-if estimates on an empty network
  (nothing booked) for placement, which asks the same pairs many times per epoch; queries with
  ``cached=True`` are cached per time bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from research.orbit import ContactPlan, UnreachableError
from research.orbit.network import NetworkResources, NetworkState
from research.orbit.routing import Hop as OrbitHop
from research.orbit.routing import TransferResult

__all__ = ["GROUND", "Hop", "Network"]

GROUND = "ground"
"""Destination meaning: whichever ground station the bytes reach first."""


@dataclass(frozen=True)
class Hop:
    """A resolved transfer: where it went, when it arrived and what it cost.

    ``wait_s + transmit_s + propagation_s == t_arrival - t_start`` (waiting includes the time a
    link, transmitter or antenna carries earlier transfers); ``links`` holds the orbit package's
    per-link hops (their ``kind`` and ``src`` tell downlink, uplink and ISL apart). An undelivered
    transfer has ``delivered=False``, ``t_arrival=inf`` and its ``reason``.
    """

    dst: str
    t_start: float
    t_arrival: float
    energy_j: float
    path: tuple[str, ...]
    wait_s: float = 0.0
    transmit_s: float = 0.0
    propagation_s: float = 0.0
    links: tuple[OrbitHop, ...] = ()
    delivered: bool = True
    reason: str = ""

    @property
    def duration_s(self) -> float:
        return self.t_arrival - self.t_start


def _hop(r: TransferResult, t0: float) -> Hop:
    return Hop(r.path[-1], t0, r.t_arrival, r.energy_j, tuple(r.path), r.wait_s, r.transmit_s,
               r.propagation_s, tuple(r.hops))


class Network:
    """Transfers between nodes of one contact plan: booked ones and cached planning estimates.

    Args:
        plan: the contact plan.
        resources: what each node can do at once (``capacity: unlimited`` books nothing); each
            simulation gets a fresh :meth:`new_state` with them.
        cache_bucket_s: queries made with ``cached=True`` are rounded down to this bucket.
    """

    def __init__(self, plan: ContactPlan, resources: NetworkResources | None = None,
                 cache_bucket_s: float = 60.0) -> None:
        self.plan = plan
        self.resources = resources or NetworkResources()
        self.bucket = cache_bucket_s
        self._cache: dict[tuple, Hop | None] = {}

    def is_station(self, node: str) -> bool:
        return node == GROUND or self.plan.is_station(node)

    def new_state(self) -> NetworkState:
        """An empty network (no bookings) with this network's resources."""
        return NetworkState(self.plan, self.resources)

    def _local(self, src: str, dst: str, t0: float) -> Hop | None:
        if src == dst or (dst == GROUND and self.plan.is_station(src)):
            return Hop(src, t0, t0, 0.0, (src,))
        return None

    def send(self, state: NetworkState, src: str, dst: str, n_bytes: float, t0: float) -> Hop:
        """Book ``n_bytes`` from ``src`` to ``dst`` (or :data:`GROUND`) on ``state`` at ``t0``."""
        local = self._local(src, dst, t0)
        if local is not None:
            return local
        if t0 >= self.plan.horizon_s:
            return Hop(src, t0, math.inf, 0.0, (src,), delivered=False,
                       reason=f"ready after the plan horizon ({self.plan.horizon_s:g} s)")
        r = state.send(src, self.plan.stations if dst == GROUND else dst, n_bytes, t0)
        if not r.delivered:
            return Hop(src, t0, math.inf, 0.0, (src,), delivered=False, reason=r.reason)
        return _hop(r, t0)

    def transfer(self, src: str, dst: str, n_bytes: float, t0: float,
                 cached: bool = False) -> Hop | None:
        """Earliest arrival of ``n_bytes`` from ``src`` to ``dst`` on an empty network (a what-if:
        nothing is booked); ``None`` when unreachable within the plan."""
        if cached:
            t0 = math.floor(t0 / self.bucket) * self.bucket
            key = (src, dst, round(n_bytes), t0)
            if key not in self._cache:
                self._cache[key] = self.transfer(src, dst, n_bytes, t0)
            return self._cache[key]
        local = self._local(src, dst, t0)
        if local is not None:
            return local
        if t0 >= self.plan.horizon_s:
            return None
        targets = self.plan.stations if dst == GROUND else dst  # stations: one search
        try:
            return _hop(self.plan.transfer(src, targets, n_bytes, t0), t0)
        except UnreachableError:
            return None

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
