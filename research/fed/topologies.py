"""Aggregation topologies: where trained updates go and how they become the next global head.

A topology is one class registered by name with one decorator (``@register_topology("ring")``)
and named in the run's YAML (``topology: ring``); it is an axis separate from the scheme
(:mod:`research.fed.schemes`). The round engine (:class:`research.fed.rounds._Round`) builds one
instance per round and calls its hooks as events happen:

* :meth:`Topology.trained` when a satellite has trained in time;
* :meth:`Topology.plane_closed` when a plane's members are known (all settled, or the deadline);
* :meth:`Topology.finish` once the round's transfers have run, with the updates' numerics.

``direct``: the head and updates travel between a satellite and the ground over that
satellite's own ground links (no relay). ``lookahead``: the round is first simulated on a copy of
the bookings (a what-if, discarded) and :meth:`Topology.plan` of that copy is handed to the real
round (the ring uses it to choose where plane sums meet).

* ``star``: each satellite uploads its update straight to a station it sees; FedAvg on the
  ground; the ground broadcasts the head to each satellite directly.
* ``ring``: a ring all-reduce per plane over intra-plane ISLs, then the plane sums meet at a
  plane leader over inter-plane ISLs or at the ground, whichever gets them all first. A ring
  that fails falls back to the star for its satellites.
* ``gossip``: decentralised averaging over the ISL graph, with no root and no ground station in
  the aggregation: synchronous gossip steps with Metropolis-Hastings weights, as many as shrink
  any disagreement from the image-weighted mean by ``comm.gossip_tol`` (:class:`Gossip`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import networkx as nx
import numpy as np
import torch

from research.fed.aggregate import (
    WIRE_BYTES,
    State,
    mean_from_sum,
    ring_allreduce,
    weighted_vector,
)
from research.fed.ledger import Track, latest
from research.fed.network import GROUND, FedNetwork, Transfers
from research.orbit import TransferResult
from research.orbit.isl import KIND_GROUND
from research.registry import Registry

if TYPE_CHECKING:
    from research.fed.rounds import _Round



EVERY_SATELLITE = "every satellite"
"""Holder of a head that every satellite already holds (after gossip): no broadcast needed."""


class HorizonReached(RuntimeError):
    """No satellite could take part (or no head could be formed) before the plan's end."""


class Topology:
    """Base class of aggregation topologies (see the module docstring)."""

    name: ClassVar[str] = ""
    direct: ClassVar[bool] = False
    lookahead: ClassVar[bool] = False
    secure_aggregation: ClassVar[bool] = True  # pairwise masks cancel in its sums

    def __init__(self, rnd: _Round, plan: object = None) -> None:
        self.rnd = rnd

    def plan(self) -> object:
        """After a look-ahead round: what the real round should know (None: nothing)."""
        return None

    def trained(self, sat: str, tr: Track) -> None:
        """``sat`` trained in time; its update exists at ``tr``."""

    def plane_closed(self, plane: int) -> None:
        """``plane``'s members are known: ``rnd.ready`` holds those that trained in time."""

    def finish(self, updates: dict[str, State]) -> tuple[Track, State, str, str]:
        """``(end, head, holder, label)``: when and where the new head exists."""
        raise NotImplementedError

    def columns(self) -> dict:
        """Extra ledger columns of the round (after :meth:`finish`)."""
        return {}


_TOPOLOGIES: Registry[type[Topology]] = Registry("topology", name_attr="name")


def register_topology(name: str) -> Callable[[type[Topology]], type[Topology]]:
    """Class decorator registering a :class:`Topology` under ``name``."""
    return _TOPOLOGIES.register(name)


def list_topologies() -> list[str]:
    return _TOPOLOGIES.names()


def get_topology(name: str) -> type[Topology]:
    """The topology class registered as ``name`` (ValueError naming the valid ones otherwise)."""
    return _TOPOLOGIES.get(name)


@register_topology("star")
class Star(Topology):
    """FedAvg through the ground stations each satellite contacts (direct links only)."""

    direct = True

    def __init__(self, rnd: _Round, plan: object = None) -> None:
        super().__init__(rnd, plan)
        self.arrived: dict[str, Track] = {}

    def trained(self, sat: str, tr: Track) -> None:
        self.rnd.upload(sat, tr, self.arrived)

    def finish(self, updates: dict[str, State]) -> tuple[Track, State, str, str]:
        end, head = self.rnd.average_at_ground(self.arrived, updates)
        return end, head, GROUND, "star"


@register_topology("ring")
class Ring(Topology):
    """Ring all-reduce per plane, then plane sums combined over ISLs or the ground.

    ``plan``: ``(root, excluded planes)``: where the plane sums go as soon as they exist (a
    plane leader or the ground) and the planes whose sum cannot get there within the plan (their
    members are dropped, ``no_route_to_root``, rather than the round failing); None: nowhere
    yet, as in the look-ahead, or after the round if a ring failed.
    """

    lookahead = True

    def __init__(self, rnd: _Round, plan: object = None) -> None:
        super().__init__(rnd, plan)
        self.root: str | None = None
        self.excluded: set[int] = set()  # planes whose sum cannot reach the root
        if plan is not None:
            self.root, self.excluded = plan  # type: ignore[misc]
        self.rings: dict[int, _RingTiming] = {}
        # what a ring carries: the update's values and its weight
        self.numel = rnd.sim.update_bytes // WIRE_BYTES + 1
        self.at_root: list[Track] = []  # plane sums that reached the root
        self.lost: set[int] = set()  # planes whose sum was sent but not delivered
        self.fallback: dict[str, Track] = {}  # rings that failed: their updates on the ground
        self.fallback_sats: list[str] = []
        self.deferred: set[int] = set()  # planes whose ring waits for its members' SecAgg shares

    # ------------------------------------------------------------------ hooks
    def plane_closed(self, plane: int) -> None:
        """Every satellite of ``plane`` is settled: its members are known, the ring starts."""
        rnd = self.rnd
        sats = [s for s in rnd.planes[plane] if s in rnd.ready]
        if not sats:
            return
        if rnd.secagg is None:
            self._start_ring(plane, sats)
            return
        self.deferred.add(plane)  # masked chunks need every member's shares

        def armed() -> None:
            self.deferred.discard(plane)
            members = [s for s in sats if s in rnd.secagg.armed]  # the rest are dropped
            for sat in members:
                rnd.ready[sat] = rnd.secagg.armed_track(sat, rnd.ready[sat])
            if members:
                self._start_ring(plane, members)
            else:
                self._check_done()

        rnd.secagg.when_armed(sats, armed)

    def _start_ring(self, plane: int, sats: list[str]) -> None:
        rnd = self.rnd
        start = rnd.q.now
        if plane in rnd.late_planes:  # stragglers are only known at the deadline
            start = max(start, rnd.deadline)
        for sat in sats:
            rnd.ready[sat] = rnd.ready[sat].wait_until(start)
        self.rings[plane] = ring = _RingTiming(
            rnd.q, rnd.book_model, plane, sats, [rnd.ready[s] for s in sats], self.numel,
            self._plane_sum, self._ring_failed, lambda ring, j: self._check_done(),
            element_bytes=rnd.element_bytes)
        ring.start()

    def plan(self) -> tuple[str, set[int]] | None:
        """Where the plane sums should meet (see :meth:`_choose_root`), or None when there is
        nothing to combine or a ring failed."""
        leaders = self._leaders()
        if len(leaders) < 2 or self.fallback_sats:
            return None
        return self._choose_root(self.rnd.net, [(p, s, tr, tr.t) for p, s, tr in leaders])

    def finish(self, updates: dict[str, State]) -> tuple[Track, State, str, str]:
        """Plane sums (ring numerics), a ground-held partial sum of failed rings, then their
        combination at the root."""
        rnd = self.rnd
        sums: dict[int, tuple[str, torch.Tensor, Track]] = {}
        for p in rnd.planes:
            ring = self.rings.get(p)
            if ring is None or ring.failed:
                continue
            vecs = [weighted_vector(updates[s], rnd.weight(s)) for s in ring.sats]
            out, _ = ring_allreduce(vecs)
            sums[p] = (ring.sats[ring.leader], out[ring.leader], ring.done[ring.leader])
        if self.fallback_sats:
            end, head = rnd.average_at_ground(self.fallback, updates)
            # ground-held partial sum joins the inter-orbit step as a virtual plane
            sums[-1] = (GROUND, weighted_vector(head, self._weight(-1)), end)
        if not sums:
            raise HorizonReached("no plane finished its ring")
        template = updates[next(iter(rnd.ready))]
        if len(sums) == 1 and next(iter(sums.values()))[0] != GROUND:
            sat, vec, tr = next(iter(sums.values()))
            return tr, mean_from_sum(vec, template), sat, "ring"
        if self.root is None:  # a ring failed: combine once every sum exists, all at once
            t = max(max(tr.t for _, _, tr in sums.values()), rnd.q.sent)
            choice = self._choose_root(rnd.net,
                                       [(p, s, tr, t) for p, (s, _, tr) in sums.items()])
            if choice is None:
                raise HorizonReached("plane sums could not be combined within the horizon")
            self.root, self.excluded = choice
            rnd.q.rewind(t)  # events popped since (no send) must not bar sends from t
            for p, (sat, _, tr) in sums.items():
                if sat != self.root and p not in self.excluded:
                    self._send_sum(p, sat, tr, t)
            rnd.q.run()
        for p in sorted(self.excluded):  # the plan's end is no known failure (_Round.beyond_plan)
            if p in sums and sums[p][0] != GROUND:
                rnd.beyond_plan(sums[p][0], sums[p][0], self.root, "the plane sum", bound=False)
        for p in self.excluded | self.lost:
            for sat in self._members(p):
                rnd.dropped[sat] = "no_route_to_root"
            sums.pop(p, None)
        if not sums:
            raise HorizonReached("no plane sum reached a common root within the horizon")
        total = sum(v for _, v, _ in sums.values())
        leaders = [(sat, tr) for sat, _, tr in sums.values()]
        return self._end_at_root(leaders), mean_from_sum(total, template), self.root, \
            "ring+ground" if self.root == GROUND else "ring+isl"

    # ------------------------------------------------------------------ internals
    def _leaders(self) -> list[tuple[int, str, Track]]:
        """Each ring's plane and first holder of its plane's sum, in plane order."""
        return [(p, r.sats[r.leader], r.done[r.leader]) for p in self.rnd.planes
                if (r := self.rings.get(p)) is not None and not r.failed and r.leader is not None]

    def _members(self, plane: int) -> list[str]:
        """Satellites whose updates are in ``plane``'s sum (-1: the failed rings' ground sum)."""
        if plane == -1:
            return [s for s in self.fallback_sats if s not in self.rnd.dropped]
        return self.rings[plane].sats

    def _weight(self, plane: int) -> float:
        """``plane``'s weight in the mean (its images; its satellites under satellite-level DP)."""
        return sum(self.rnd.weight(s) for s in self._members(plane))

    def _choose_root(self, net: FedNetwork, leaders: list[tuple[int, str, Track, float]]
                     ) -> tuple[str, set[int]] | None:
        """Where ``(plane, holder, track, send time)`` sums should meet (what-ifs on ``net``):
        the root that gets the most weight (images) within the plan, then the earliest; plane
        leaders first, then the ground. Returns ``(root, planes that cannot reach it)``; None
        when no root gets a sum from another plane."""
        nb = self.numel * self.rnd.element_bytes
        best: tuple[tuple[int, float], str, set[int]] | None = None
        roots = [s for _, s, _, _ in leaders if s != GROUND] + [GROUND]
        # one search per leader to every candidate root (not one per pair: 72 planes)
        reach = {(plane, sat): net.arrivals(sat, [r for r in roots if r != sat], nb, t)
                 for plane, sat, _, t in leaders}
        for root in roots:
            ends, missing = [], set()
            for plane, sat, tr, _ in leaders:
                t_arrival = tr.t if sat == root else reach[(plane, sat)][root]
                if math.isinf(t_arrival):
                    missing.add(plane)
                    continue
                ends.append(t_arrival)
            if len(ends) < (1 if root == GROUND else 2):
                continue
            end = max(ends) + (self.rnd.backhaul_s if root == GROUND else 0.0)
            key = (sum(self._weight(p) for p in missing), end)
            if best is None or key < best[0]:
                best = (key, root, missing)
        return None if best is None else (best[1], best[2])

    def _plane_sum(self, ring: _RingTiming, j: int) -> None:
        """Ring ``ring``'s node ``j`` holds its plane's sum first: it goes to the root now."""
        if self.root is not None and self.root not in ring.sats \
                and ring.plane not in self.excluded:
            self._send_sum(ring.plane, ring.sats[j], ring.done[j], ring.done[j].t)
        self._check_done()

    def _check_done(self) -> None:
        """Once the new head's time is known, the rings' later sends are cancelled (nobody
        needs them; the next round starts then)."""
        rnd = self.rnd
        if len(rnd.closed) < len(rnd.planes) or self.fallback_sats or self.deferred:
            return
        rings = list(self.rings.values())
        if self.root is None:
            if len(rings) != 1 or rings[0].leader is None:
                return
            end = rings[0].done[rings[0].leader].t
        else:
            senders = [r for r in rings if self.root not in r.sats
                       and r.plane not in self.excluded]
            if len(self.at_root) + len(self.lost) < len(senders):
                return
            times = [tr.t for tr in self.at_root]
            if self.root != GROUND:
                own = self._own_sum()
                if own is None:
                    return
                times.append(own.t)
            end = max(times)
        for ring in rings:
            ring.stop_at = min(ring.stop_at, end)

    def _own_sum(self) -> Track | None:
        """When the root (a satellite) holds its own plane's sum (None: not yet / never)."""
        ring = next((r for r in self.rings.values() if self.root in r.sats), None)
        return None if ring is None else ring.done.get(ring.sats.index(self.root))

    def _send_sum(self, plane: int, sat: str, tr: Track, t: float) -> None:
        def arrived(res: TransferResult) -> None:
            if res.delivered:
                self.at_root.append(self.rnd.book_model(res, tr.wait_until(t)))
            else:  # the what-if said it would arrive; bookings since then said otherwise
                self.lost.add(plane)
            self._check_done()

        self.rnd.q.request(t, sat, self.root, self.numel * self.rnd.element_bytes, then=arrived)

    def _ring_failed(self, ring: _RingTiming, res: TransferResult) -> None:
        rnd = self.rnd
        if not rnd.quiet:
            warnings.warn(f"plane {ring.plane}: ring all-reduce failed ({res.reason}); its "
                          "satellites fall back to the ground", stacklevel=2)
        self.fallback_sats.extend(ring.sats)
        for sat in ring.sats:
            rnd.upload(sat, rnd.ready[sat].wait_until(rnd.q.now), self.fallback)

    def _end_at_root(self, leaders: list[tuple[str, Track]]) -> Track:
        tracks = list(self.at_root)
        if self.root == GROUND:
            tracks += [tr for sat, tr in leaders if sat == GROUND]
            return latest(tracks).add("propagation_s", self.rnd.backhaul_s)
        own = self._own_sum()
        if own is None:
            raise HorizonReached(f"the root {self.root} never held its plane's sum")
        return latest([*tracks, own])


@register_topology("gossip")
class Gossip(Topology):
    """Decentralised averaging over inter-satellite links: no root, no ground.

    The graph is the ISL pairs up at the round's start among its satellites (the pairs of the
    whole plan when those leave someone cut off: :func:`_isl_neighbours`); the mixing matrix ``W`` has
    Metropolis-Hastings weights (``W_ij = 1 / (1 + max(d_i, d_j))`` for neighbours, the rest on
    the diagonal: symmetric and doubly stochastic, so the average is kept). Each satellite
    starts from ``(w * update, w)`` (``w`` its images; 0 for one that did not train, which
    still mixes), and in every step sends its vector to each neighbour and takes the
    ``W``-weighted sum of its own and theirs; the ratio of the two parts tends to the
    image-weighted mean at every satellite. Steps: the fewest ``S`` with
    ``lambda ** S <= comm.gossip_tol`` (``lambda`` the second-largest eigenvalue modulus of
    ``W``), so disagreement shrinks by ``gossip_tol`` whatever the updates, and at least the
    graph's diameter, so every satellite holds part of every update. Satellites without
    data relay with weight 0.

    Timing: a satellite takes step ``s + 1`` once it holds its own step ``s`` and every
    neighbour's (each message a booked, routed transfer); the round ends when every satellite
    has finished step ``S``. Numerics: the same ``S`` steps of ``W`` on the updates. The ledger
    evaluates, and the next round starts from, the copy farthest from the mean (conservative:
    every satellite's own copy is at least as close); ``gossip_disagreement`` is that copy's
    relative L2 distance from the mean. A message that cannot be delivered (a permanent ISL
    fault) ends the run at the previous round with the reason. Secure aggregation is refused:
    its masks cancel only in sums over every member.
    """

    secure_aggregation = False

    def __init__(self, rnd: _Round, plan: object = None) -> None:
        super().__init__(rnd, plan)
        self.sats = list(rnd.net.plan.satellites)  # those without data relay (weight 0)
        self.pos = {s: i for i, s in enumerate(self.sats)}
        self.nbrs = _isl_neighbours(rnd.net.plan, self.sats, rnd.start.t)
        self.mixing = metropolis_weights(self.nbrs)
        self.steps = gossip_steps(self.mixing, rnd.sim.cfg.comm.gossip_tol)
        self.nbytes = (rnd.sim.update_bytes // WIRE_BYTES + 1) * WIRE_BYTES  # no secagg
        self.clock: list[Track | None] = [None] * len(self.sats)
        self.step = [0] * len(self.sats)
        self.inbox: dict[tuple[int, int], list[Track]] = {}
        self.done: dict[int, Track] = {}
        self.failed: TransferResult | None = None
        self.disagreement = math.nan
        members = {s for sats in rnd.planes.values() for s in sats}
        for sat in self.sats:
            if sat not in members:  # no data: holds nothing, mixes from the round's start
                self._start(self.pos[sat], rnd.start)

    # ------------------------------------------------------------------ hooks
    def trained(self, sat: str, tr: Track) -> None:
        self._start(self.pos[sat], tr)

    def plane_closed(self, plane: int) -> None:
        """Members that did not train mix too (weight 0), from when their plane is known: for a
        plane with a deadline miss, the deadline (stragglers are only known then)."""
        rnd = self.rnd
        t = rnd.q.now
        if plane in rnd.late_planes and math.isfinite(rnd.deadline):
            t = max(t, rnd.deadline)
        for sat in rnd.planes[plane]:
            if sat not in rnd.ready:
                self._start(self.pos[sat], rnd.start.wait_until(t))

    def finish(self, updates: dict[str, State]) -> tuple[Track, State, str, str]:
        rnd = self.rnd
        if self.failed is not None or len(self.done) < len(self.sats):
            why = (f"a message was not delivered: {self.failed.reason}" if self.failed is not None
                   else "a satellite never mixed")
            raise HorizonReached(f"gossip could not finish its {self.steps} steps ({why})")
        template = updates[next(iter(rnd.ready))]
        width = next(iter(weighted_vector(template, 1.0).shape))
        x = torch.zeros(len(self.sats), width, dtype=torch.float64)
        for sat in rnd.ready:
            if sat not in rnd.dropped:
                x[self.pos[sat]] = weighted_vector(updates[sat], rnd.weight(sat))
        if float(x[:, -1].sum()) <= 0:
            raise HorizonReached("no update to average: no satellite trained in time")
        exact = x.sum(dim=0)
        mixed = torch.linalg.matrix_power(torch.as_tensor(self.mixing, dtype=torch.float64),
                                          self.steps) @ x
        mean = exact[:-1] / exact[-1]
        held = mixed[:, :-1] / mixed[:, -1:].clamp_min(1e-300)
        gap = (held - mean).norm(dim=1) / mean.norm().clamp_min(1e-30)
        worst = int(gap.argmax())
        self.disagreement = float(gap[worst])
        # the copy farthest from the mean: what the ledger evaluates and the next round starts
        # from (conservative; each satellite's own copy is at least as close to the mean)
        return latest(list(self.done.values())), mean_from_sum(mixed[worst], template), \
            EVERY_SATELLITE, "gossip"

    def columns(self) -> dict:
        return {"gossip_steps": self.steps, "gossip_disagreement": self.disagreement}

    # ------------------------------------------------------------------ internals
    def _start(self, i: int, tr: Track) -> None:
        if self.clock[i] is not None:
            return
        self.clock[i] = tr
        if self.steps == 0:
            self.done[i] = tr
            return
        self._send_all(i)
        self._advance(i)

    def _send_all(self, i: int) -> None:
        tr, s = self.clock[i], self.step[i]
        for j in self.nbrs[i]:
            self.rnd.q.request(tr.t, self.sats[i], self.sats[j], self.nbytes,
                               then=lambda res, j=j: self._arrived(j, s, tr, res))

    def _arrived(self, j: int, s: int, tr: Track, res: TransferResult) -> None:
        if not res.delivered:
            self.failed = self.failed or res
            return
        self.inbox.setdefault((j, s), []).append(self.rnd.book_model(res, tr))
        self._advance(j)

    def _advance(self, j: int) -> None:
        """Step on while ``j`` holds its own state and all its neighbours' of the same step."""
        while self.clock[j] is not None and self.step[j] < self.steps and \
                len(self.inbox.get((j, self.step[j]), ())) == len(self.nbrs[j]):
            self.clock[j] = latest([self.clock[j], *self.inbox.pop((j, self.step[j]))])
            self.step[j] += 1
            if self.step[j] == self.steps:
                self.done[j] = self.clock[j]
            else:
                self._send_all(j)


def _isl_neighbours(plan, sats: list[str], t: float) -> list[list[int]]:
    """Each satellite's ISL neighbours among ``sats``: the pairs whose link is up at ``t`` (the
    ephemeris says which) or, when those leave someone cut off, the pairs with a window anywhere
    in the plan (messages then wait for their link or are relayed). An error naming the parts
    when even those do not join everyone."""
    if not sats:
        raise ValueError("topology 'gossip' needs at least one satellite")
    pos = {s: i for i, s in enumerate(sats)}
    isl = plan.link_kind[plan.win_link] != KIND_GROUND
    now = isl & (plan.win_start <= t) & (t < plan.win_end)
    for windows in (now, isl):
        graph = nx.Graph()
        graph.add_nodes_from(range(len(sats)))
        for link in np.unique(plan.win_link[windows]):
            na, nb = plan.nodes[int(plan.link_a[link])], plan.nodes[int(plan.link_b[link])]
            if na in pos and nb in pos:
                graph.add_edge(pos[na], pos[nb])
        if nx.is_connected(graph):
            return [sorted(graph.neighbors(i)) for i in range(len(sats))]
    joined = nx.node_connected_component(graph, 0)
    cut = [sats[i] for i in range(len(sats)) if i not in joined]
    raise ValueError(f"topology 'gossip' needs the satellites' ISLs to join them all; "
                     f"{len(cut)} of {len(sats)} are cut off from {sats[0]}: {cut[:5]}")


def metropolis_weights(nbrs: list[list[int]]) -> np.ndarray:
    """Metropolis-Hastings mixing matrix of a graph (symmetric, doubly stochastic)."""
    n = len(nbrs)
    w = np.zeros((n, n))
    for i, row in enumerate(nbrs):
        for j in row:
            w[i, j] = 1.0 / (1 + max(len(row), len(nbrs[j])))
        w[i, i] = 1.0 - w[i].sum()
    return w


def gossip_steps(mixing: np.ndarray, tol: float) -> int:
    """Fewest steps that shrink any disagreement by ``tol`` (spectral bound of ``mixing``), and
    at least the graph's diameter, so that every satellite has heard from every other (one that
    trained alone would otherwise leave far satellites with nothing)."""
    if len(mixing) == 1:
        return 0
    eig = np.sort(np.abs(np.linalg.eigvalsh(mixing)))[::-1]
    lam = float(eig[1])
    if lam >= 1 - 1e-12:
        raise ValueError("the gossip graph is not connected (mixing eigenvalue 1 repeated)")
    spectral = max(1, math.ceil(math.log(tol) / math.log(lam))) if lam > 0 else 1
    return max(spectral, nx.diameter(nx.from_numpy_array((mixing > 0).astype(int))))


class _RingTiming:
    """When the chunks of one plane's ring all-reduce arrive (the numerics are
    :func:`research.fed.aggregate.ring_allreduce`'s): in each of ``2(K - 1)`` steps node ``i``
    sends one chunk to ``i + 1``, and step ``s + 1`` once it holds the chunk of step ``s``. Each
    send is booked when popped from ``q``; a node's clock is the latest of its own and what it
    received. ``done[i]``: node ``i``'s track once it holds the sum; ``leader``: the first node
    to hold it (``on_sum(ring, leader)`` is called then; ``on_hold(ring, i)`` whenever node ``i``
    gets it). A chunk that cannot be delivered before anyone holds the sum fails the ring
    (``on_fail(ring, result)``; its pending sends are cancelled); sends from ``stop_at`` on are
    cancelled too (set once the round's end is known: nobody needs them)."""

    def __init__(self, q: Transfers, book: Callable[[TransferResult, Track], Track], plane: int,
                 sats: list[str], tracks: list[Track], numel: int,
                 on_sum: Callable[[_RingTiming, int], None],
                 on_fail: Callable[[_RingTiming, TransferResult], None],
                 on_hold: Callable[[_RingTiming, int], None] | None = None,
                 element_bytes: float = WIRE_BYTES) -> None:
        self.q, self.book, self.plane, self.sats = q, book, plane, sats
        self.tracks = list(tracks)
        self.on_sum, self.on_fail, self.on_hold = on_sum, on_fail, on_hold
        self.stop_at = math.inf
        self.done: dict[int, Track] = {}
        self.leader: int | None = None
        self.failed = False
        k = len(sats)
        base, extra = divmod(numel, k)  # torch.tensor_split's chunk sizes
        self.chunk_bytes = [(base + (c < extra)) * element_bytes for c in range(k)]

    def start(self) -> None:
        if len(self.sats) == 1:
            self._holds(0)
            return
        for i in range(len(self.sats)):
            self._send(i, 0)

    def _send(self, i: int, s: int) -> None:
        k = len(self.sats)
        chunk = (i - s) % k if s < k - 1 else (i + 1 - (s - (k - 1))) % k
        tr = self.tracks[i]
        self.q.request(tr.t, self.sats[i], self.sats[(i + 1) % k], self.chunk_bytes[chunk],
                       then=lambda res: self._arrived(i, s, tr, res),
                       live=lambda t: not self.failed and t < self.stop_at)

    def _arrived(self, i: int, s: int, tr: Track, res: TransferResult) -> None:
        if not res.delivered:
            if self.leader is None:
                self.failed = True
                self.on_fail(self, res)
            return
        j = (i + 1) % len(self.sats)
        arrival = self.book(res, tr)
        if arrival.t > self.tracks[j].t:
            self.tracks[j] = arrival
        if s + 1 < 2 * (len(self.sats) - 1):
            self._send(j, s + 1)
        else:
            self._holds(j)

    def _holds(self, j: int) -> None:
        self.done[j] = self.tracks[j]
        if self.on_hold is not None:
            self.on_hold(self, j)

        def first() -> None:
            if self.leader is None and not self.failed:
                self.leader = j
                self.on_sum(self, j)

        self.q.at(self.tracks[j].t, first)
