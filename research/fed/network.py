"""The contact plan as federated rounds see it: booked transfers, the ground, and faults.

Every transfer of a run is booked on network states that live for the whole run (bookings
persist across rounds), first come first served on link directions, transmitters, station
antennas and storage (:class:`~research.orbit.network.NetworkState`; ``network: capacity:
unlimited`` books nothing). Routed transfers use the whole plan; ``direct`` ones (a satellite and
the ground over the satellite's own ground links, no relay) use a ground-links-only view of it
with its own bookings, as :class:`NetworkState` has no direct-only route: direct and routed
transfers contend among themselves, not with each other (they meet only in the ablations that
mix them).

Transfers must be issued in time order: a round issues them through :class:`Transfers`, an event
queue that sends each one when it is popped. Every send is also logged (:meth:`FedNetwork.take_log`)
so that a resumed run can :meth:`~FedNetwork.replay` the bookings of the rounds it skips.

Faults (station outages, ISL failures) are injected here, as a thin mask over the unchanged
:class:`~research.orbit.ContactPlan`: a transfer whose route touches a failed node or link while
it is down is put back until the end of the outage (store-and-forward waits it out), and the
visibility queries used by the downlink scheduler leave failed stations and links out.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence

from research.fed.config import Fault
from research.orbit import ContactPlan, TransferResult, UnreachableError
from research.orbit.isl import KIND_GROUND
from research.orbit.network import NetworkResources, NetworkState

GROUND = "ground"
"""Holder name of a model that sits on the (terrestrially connected) ground segment; as a
transfer end, whichever station is best (stations share a terrestrial network)."""


def ground_links_only(plan: ContactPlan) -> ContactPlan:
    """The same plan with its ISL windows left out (same nodes and link indices)."""
    keep = plan.link_kind[plan.win_link] == KIND_GROUND
    return ContactPlan(
        grid=plan.grid, satellites=plan.satellites, stations=plan.stations,
        planes=[plan.plane_of(s) for s in plan.satellites], link_a=plan.link_a,
        link_b=plan.link_b, link_kind=plan.link_kind, win_link=plan.win_link[keep],
        win_start=plan.win_start[keep], win_end=plan.win_end[keep], win_k0=plan.win_k0[keep],
        win_n=plan.win_n[keep], win_off=plan.win_off[keep], range_km=plan.range_km,
        models=plan.models, sunlit_bits=plan.sunlit_bits,
        meta={**plan.meta, "view": "ground links only"})


class FedNetwork:
    """Fault-aware, booked transfers over a contact plan (see module docstring).

    Args:
        plan: The contact plan.
        faults: Station outages and ISL failures.
        resources: Transmitters, antennas, storage and the capacity mode of the bookings.
    """

    def __init__(self, plan: ContactPlan, faults: Sequence[Fault] = (),
                 resources: NetworkResources | None = None) -> None:
        self.plan = plan
        self.faults = list(faults)
        self.stations = set(plan.stations)
        for f in self.faults:
            for node in f.nodes:
                plan.index(node)  # unknown node: KeyError naming it
        self.resources = resources or NetworkResources()
        self.state = NetworkState(plan, self.resources)
        self._ground_plan: ContactPlan | None = None
        self._direct: NetworkState | None = None
        self._never: dict[tuple[str, str, bool], bool] = {}  # plan-level, shared by copies
        self.log: list[list] = []  # [direct, sources, targets, n_bytes, t0] of every send

    @property
    def horizon_s(self) -> float:
        return self.plan.horizon_s

    def _faults_end(self) -> bool:
        """Whether every fault ends (then a route they mask is only cut by the plan's end)."""
        return all(math.isfinite(f.end_s) for f in self.faults)

    def _ground_links(self) -> ContactPlan:
        if self._ground_plan is None:
            self._ground_plan = ground_links_only(self.plan)
        return self._ground_plan

    def direct_state(self) -> NetworkState:
        """Bookings of direct transfers (on the ground-links-only view, made on first use)."""
        if self._direct is None:
            self._direct = NetworkState(self._ground_links(), self.resources)
        return self._direct

    def drain_reaches(self, sat: str, sharing: bool) -> bool:
        """Whether the max-flow drain could ever move ``sat``'s bytes down: ``sat`` has a ground
        link at some time in the plan or, with intra-plane sharing, a satellite of its plane
        has."""
        plane = self.plan.plane_of(sat)
        carriers = [s for s in self.plan.satellites if self.plan.plane_of(s) == plane] \
            if sharing else [sat]
        return any(not self.never_connected(s, GROUND, direct=True) for s in carriers)

    def never_connected(self, src: str, dst: str, *, direct: bool = False) -> bool:
        """Whether the plan joins ``src`` to ``dst`` at no time at all: a failure the ground
        knows from the ephemeris (an island plane that never sees a station), unlike a transfer
        the plan's end merely cuts short."""
        key = (src, dst, direct)
        if key not in self._never:
            sources = self.plan.stations if src == GROUND else [src]
            targets = self.plan.stations if dst == GROUND else [dst]
            plan = self._ground_links() if direct else self.plan
            try:
                plan.transfer(sources, targets, 1.0, 0.0)
                self._never[key] = False
            except UnreachableError:
                self._never[key] = True
        return self._never[key]

    def copy(self) -> FedNetwork:
        """Independent bookings (plan, faults and the ground view are shared): a what-if."""
        new = FedNetwork.__new__(FedNetwork)
        new.__dict__.update(self.__dict__)
        new.state = self.state.copy()
        new._direct = None if self._direct is None else self._direct.copy()
        new.log = list(self.log)
        return new

    def take_log(self) -> list[list]:
        """The sends logged since the last call (plain lists: checkpoint-safe), then forget them."""
        log, self.log = self.log, []
        return log

    def replay(self, log: Sequence[Sequence]) -> None:
        """Book the sends of an earlier :meth:`take_log` again, in order (a resumed run)."""
        for direct, sources, targets, n_bytes, t0 in log:
            state = self.direct_state() if direct else self.state
            state.send(list(sources), list(targets), n_bytes, t0)

    def _send(self, state: NetworkState, direct: bool, sources: list[str], targets: list[str],
              n_bytes: float, t0: float) -> TransferResult:
        self.log.append([bool(direct), list(sources), list(targets), float(n_bytes), float(t0)])
        return state.send(sources, targets, n_bytes, t0)

    def summary(self) -> dict:
        """What the run's network carried (:meth:`NetworkState.summary`), routed and direct."""
        out = {"routed": self.state.summary()}
        if self._direct is not None:
            out["direct"] = self._direct.summary()
        return out

    # ------------------------------------------------------------------ faults
    def _fault_hits(self, f: Fault, a: str, b: str) -> bool:
        if f.kind == "station_outage":
            return f.nodes[0] in (a, b)
        return {a, b} == set(f.nodes)

    def down(self, a: str, b: str, t: float) -> bool:
        """Whether the link ``a``-``b`` is masked by a fault at ``t``."""
        return any(f.start_s <= t < f.end_s and self._fault_hits(f, a, b) for f in self.faults)

    def _blocked_until(self, res: TransferResult) -> float | None:
        end = None
        for hop in res.hops:
            for f in self.faults:
                if (self._fault_hits(f, hop.src, hop.dst) and hop.t_ready < f.end_s
                        and f.start_s < hop.t_arrival):
                    end = max(end or f.end_s, f.end_s)
        return end

    def _fault_free(self, state: NetworkState, src: str, dst: str, n_bytes: float, t: float
                    ) -> tuple[float, TransferResult]:
        """The first start at or after ``t`` whose route (a what-if) avoids every fault."""
        for _ in range(64):
            if t >= self.horizon_s:
                break
            res = state.route(src, dst, n_bytes, t)
            end = self._blocked_until(res) if res.delivered else None
            if end is None:
                return t, res
            t = end
        return t, TransferResult.undelivered(src, n_bytes, t,
                                             "no fault-free route within the horizon",
                                             beyond_horizon=self._faults_end())

    # ------------------------------------------------------------------ transfers
    def _endpoints(self, src: str, dst: str, direct: bool
                   ) -> tuple[NetworkState, list[str], list[str]]:
        """The state to book on and the node lists :data:`GROUND` stands for."""
        state = self.direct_state() if direct else self.state
        sources = self.plan.stations if src == GROUND else [src]
        targets = self.plan.stations if dst == GROUND else [dst]
        return state, sources, targets

    def attempt(self, src: str, dst: str, n_bytes: float, t0: float, *, direct: bool = False
                ) -> TransferResult | float:
        """Send ``n_bytes`` at ``t0`` (booked), or say when to try again.

        ``src`` / ``dst`` may be :data:`GROUND`. Returns the transfer's result (``delivered``
        False, with the reason, when nothing arrives within the horizon), or, when a fault masks
        the best route now, the time its outage ends (nothing booked). ``direct`` allows only the
        satellite's own ground links. ``t0`` must not be earlier than the previous booking's.
        """
        if direct and GROUND not in (src, dst) and not (
                self.plan.is_station(src) or self.plan.is_station(dst)):
            raise ValueError(f"a direct transfer joins a satellite and the ground, got {src} -> "
                             f"{dst}")
        state, sources, targets = self._endpoints(src, dst, direct)
        if t0 >= self.horizon_s:
            return TransferResult.undelivered(sources, n_bytes, t0, "starts after the plan "
                                              "horizon", beyond_horizon=True)
        if not self.faults:
            return self._send(state, direct, sources, targets, n_bytes, t0)
        best: tuple[float, str, str, TransferResult] | None = None
        for a in sources:  # each pair on its own, as a fault may mask one station only
            for b in targets:
                t, res = self._fault_free(state, a, b, n_bytes, t0)
                if res.delivered and (best is None or res.t_arrival < best[3].t_arrival):
                    best = (t, a, b, res)
        if best is None:  # a permanent outage is a failure the ground knows, not the plan's end
            return TransferResult.undelivered(sources, n_bytes, t0,
                                              "no fault-free route within the horizon",
                                              beyond_horizon=self._faults_end())
        if best[0] > t0:
            return best[0]
        return self._send(state, direct, [best[1]], [best[2]], n_bytes, t0)

    def route(self, src: str, dst: str, n_bytes: float, t0: float, *, direct: bool = False
              ) -> TransferResult:
        """What :meth:`attempt` would deliver, waiting out faults, without booking (a what-if
        that may look at any time)."""
        state, sources, targets = self._endpoints(src, dst, direct)
        if t0 >= self.horizon_s:
            return TransferResult.undelivered(sources, n_bytes, t0, "starts after the plan "
                                              "horizon", beyond_horizon=True)
        if not self.faults:
            return state.route(sources, targets, n_bytes, t0)
        results = [self._fault_free(state, a, b, n_bytes, t0)[1] for a in sources for b in targets]
        return min(results, key=lambda r: r.t_arrival)

    def arrivals(self, src: str, dsts: Sequence[str], n_bytes: float, t0: float
                 ) -> dict[str, float]:
        """When ``n_bytes`` sent from ``src`` at ``t0`` would reach each of ``dsts`` (a what-if
        over the whole network; :data:`GROUND`: the first station; ``inf``: not within the
        plan). One search for all of them where no fault can mask a route, else one
        :meth:`route` each."""
        if not dsts:
            return {}
        if self.faults or t0 >= self.horizon_s:
            return {d: self.route(src, d, n_bytes, t0).t_arrival for d in dsts}
        nodes = [d for d in dsts if d != GROUND]
        want = nodes + (list(self.plan.stations) if GROUND in dsts else [])
        got = self.state.arrivals(self.plan.stations if src == GROUND else src, want, n_bytes,
                                  t0)
        out = {d: got[d] for d in nodes}
        if GROUND in dsts:
            out[GROUND] = min((got[g] for g in self.plan.stations), default=math.inf)
        return out

    def transfer(self, src: str, dst: str, n_bytes: float, t0: float, *, direct: bool = False
                 ) -> TransferResult:
        """Book one transfer now, waiting out faults (for a single transfer: a round issues
        its transfers through :class:`Transfers`). Raises :class:`UnreachableError` when nothing
        arrives within the horizon."""
        t = t0
        while True:
            res = self.attempt(src, dst, n_bytes, t, direct=direct)
            if isinstance(res, TransferResult):
                break
            t = res
        if not res.delivered:
            raise UnreachableError(f"{src} -> {dst}: {n_bytes:.0f} bytes after t={t0:.0f} s: "
                                   f"{res.reason}")
        return res

    def to_ground(self, sat: str, n_bytes: float, t0: float, *, direct: bool) -> TransferResult:
        """Earliest delivery to any station (stations share a terrestrial network)."""
        return self.transfer(sat, GROUND, n_bytes, t0, direct=direct)

    def from_ground(self, sat: str, n_bytes: float, t0: float, *, direct: bool) -> TransferResult:
        """Earliest delivery from whichever station reaches ``sat`` first."""
        return self.transfer(GROUND, sat, n_bytes, t0, direct=direct)

    # ------------------------------------------------------------------ visibility at t
    def ground_pairs(self, t: float) -> list[tuple[str, str, float]]:
        """``(sat, station, rate bit/s)`` in contact at ``t``, without failed stations."""
        return [(s, g, r) for s, g, r in self.plan.visible_pairs(t)
                if r > 0 and not self.down(s, g, t)]

    def intra_plane_links(self, sats: Sequence[str], t: float) -> list[tuple[str, str, float]]:
        """Directed intra-plane ISLs ``(a, b, rate)`` among ``sats`` that are up at ``t``."""
        chosen = set(sats)
        out = []
        for a in sats:
            pa = self.plan.plane_of(a)
            for b in self.plan.neighbours(a, t):
                if (b in chosen and not self.plan.is_station(b) and self.plan.plane_of(b) == pa
                        and not self.down(a, b, t)):
                    rate = self.plan.rate_bps(a, b, t)
                    if rate > 0:
                        out.append((a, b, rate))
        return out

    def delay_s(self, a: str, b: str, t: float) -> float:
        d = self.plan.delay_s(a, b, t)
        return 0.0 if math.isinf(d) else d


class Transfers:
    """Transfers issued in time order: an event queue over a :class:`FedNetwork`.

    :meth:`request` queues a transfer at ``t0``; :meth:`run` pops the earliest, sends it (a
    fault on its route puts it back at the fault's end) and hands the result to its ``then``,
    which may request more transfers, never earlier than the one it got. ``live(t)`` (checked
    when popped at ``t``) cancels a transfer nobody needs any more. :meth:`at` queues a plain
    event. ``beyond_horizon(src, dst, direct, res, bound)``, when set, sees every transfer the
    plan ends too early to settle before its ``then`` does (it may raise to stop the run: the
    outcome is unknowable); ``bound`` says the transfer had a ``live`` test (a deadline).
    """

    def __init__(self, net: FedNetwork,
                 beyond_horizon: Callable[[str, str, bool, TransferResult, bool], None]
                 | None = None) -> None:
        self.net = net
        self.beyond_horizon = beyond_horizon
        self.now = -math.inf  # the time of the event being handled
        self.sent = -math.inf  # the time of the latest transfer sent
        self._heap: list[tuple[float, int, tuple]] = []
        self._seq = 0

    def request(self, t0: float, src: str, dst: str, n_bytes: float, *, direct: bool = False,
                then: Callable[[TransferResult], None],
                live: Callable[[float], bool] | None = None) -> None:
        if t0 < self.now - 1e-9:
            raise ValueError(f"transfer {src} -> {dst} requested at t={t0} s, before the "
                             f"current event at {self.now} s")
        heapq.heappush(self._heap, (t0, self._seq, (src, dst, n_bytes, direct, then, live)))
        self._seq += 1

    def at(self, t: float, event: Callable[[], None]) -> None:
        """Call ``event()`` when the queue reaches ``t``."""
        if t < self.now - 1e-9:
            raise ValueError(f"event at t={t} s, before the current event at {self.now} s")
        heapq.heappush(self._heap, (t, self._seq, event))
        self._seq += 1

    def rewind(self, t: float) -> None:
        """Accept requests from ``t`` again, after a synchronisation point worked out outside
        the queue (a round's end): only the order of sends binds the network, so ``t`` must not
        precede the latest send."""
        if t < self.sent - 1e-9:
            raise ValueError(f"cannot rewind to t={t} s, before the latest send at {self.sent} s")
        self.now = min(self.now, t)

    def run(self, until: float = math.inf) -> None:
        """Send every queued transfer (those requested from ``then`` too) up to ``until``."""
        while self._heap and self._heap[0][0] <= until:
            t, seq, item = heapq.heappop(self._heap)
            if callable(item):
                self.now = t
                item()
                continue
            src, dst, n_bytes, direct, then, live = item
            if live is not None and not live(t):
                continue
            self.now = t
            res = self.net.attempt(src, dst, n_bytes, t, direct=direct)
            if isinstance(res, TransferResult):
                self.sent = t
                if res.beyond_horizon and self.beyond_horizon is not None:
                    self.beyond_horizon(src, dst, direct, res, live is not None)
                then(res)
            else:  # a fault masks the route: try again when it ends
                heapq.heappush(self._heap, (res, seq, item))
