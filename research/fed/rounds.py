"""One federated round on the contact plan, for either scheme, priced in simulated time.

A round starts when the previous global head exists (on the ground or on a satellite, its
``holder``) and ends when the new one does; its broadcast to the satellites is the first step of
the next round, overlapped with (re-)computing features, as an operator would pipeline it.

* ``collaborative`` (the paper's split): satellites embed their images; embeddings go down by
  the max-flow scheduler (shared over intra-plane ISLs); the ground encoder returns features;
  satellites train the head; heads are summed by a ring all-reduce per plane and across planes
  over inter-plane ISLs or through the ground, whichever finishes first.
* ``onboard``: satellites run the whole model and train the same head; FedAvg through the ground
  stations they contact (star: direct sat -> station uploads and station -> sat broadcast).

Every transfer (broadcast, feature uplink, update upload, ring chunk, plane sum) is booked on the
run's :class:`~research.fed.network.FedNetwork`, whose bookings persist across rounds, so model
uploads and downloads wait for each other on shared links, transmitters and antennas. A round is
simulated as events: each transfer is sent when it is popped from a time-ordered queue
(:class:`~research.fed.network.Transfers`), so transfers are booked in time order, first come
first served. Two decisions need more than what has happened so far:

* a plane's ring starts once every satellite of the plane is settled (its broadcast and
  feature uplink sent, its training done or past the deadline), so its members are known; a
  member ready earlier waits for that (only in a round that moves features), and all wait for
  the deadline if one of them is late;
* where the plane sums meet (a plane leader over ISLs, or the ground, whichever gets them all
  first, as before) is chosen by simulating the round ahead on a copy of the bookings (a
  what-if, discarded) and estimating each root's arrivals from when each sum exists; in the
  round itself each plane's first holder of its sum sends it to that root as soon as it has it.
  If a ring fails, its satellites send their updates to the ground and the sums are combined
  once all exist.

The embeddings' downlink is the max-flow scheduler's (:mod:`research.fed.schedule`), which
shares each step's contacts among the satellites itself and books nothing on the network.

Satellites without data, without contacts or past the deadline are dropped from the round with
the reason in the ledger; a dropped update is discarded, never averaged in later.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from devices import get_device
from research.fed.aggregate import (
    WIRE_BYTES,
    State,
    mean_from_sum,
    ring_allreduce,
    weighted_average,
    weighted_vector,
)
from research.fed.clients import (
    Dataset,
    SatelliteClient,
    accuracy,
    client_update,
)
from research.fed.config import FedConfig
from research.fed.cost import Costs
from research.fed.ledger import Accounting, Track, latest, round_row
from research.fed.network import GROUND, FedNetwork, Transfers
from research.fed.schedule import drain_to_ground
from research.orbit import TransferResult

PRELOADED = "preloaded"
Trainer = Callable[[int, State, list[str]], dict[str, State]]
"""``(round, global head, satellites) -> {satellite: updated head}``: the engine's local step."""


@dataclass
class RunState:
    """Everything a resumed run needs (plain types and tensors, saved each round)."""

    round: int
    t: float
    holder: str
    head: dict[str, torch.Tensor]
    have_features: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    energy: dict[str, list[float]] = field(default_factory=dict)


class HorizonReached(RuntimeError):
    """No satellite could take part before the end of the contact plan."""


class RoundSimulator:
    """Runs rounds of one scheme over a network, a dataset and clients.

    ``net`` holds the run's bookings: use one simulator (and network) per run.
    """

    def __init__(self, cfg: FedConfig, net: FedNetwork, clients: list[SatelliteClient],
                 costs: Costs, template: nn.Module, data: Dataset,
                 trainer: Trainer | None = None) -> None:
        self.cfg, self.net, self.clients, self.costs = cfg, net, clients, costs
        self.template, self.data = template, data
        self.sat_hw = get_device(cfg.profiles.satellite).require_throughput()
        self.ground_hw = get_device(cfg.profiles.ground).require_throughput()
        self.collab = cfg.scheme == "collaborative"
        self.ring = self.collab and cfg.comm.ring_aggregation
        self.sharing = self.collab and cfg.comm.intra_orbit_sharing
        self.index = {c.sat: i for i, c in enumerate(clients)}
        self.trainer: Trainer = trainer or self.train_local
        self._drain: tuple[tuple, dict[str, Track], Accounting] | None = None

    def train_local(self, round_idx: int, head: State, sats: list[str]) -> dict[str, State]:
        """Local updates of ``sats`` in this process (the default engine)."""
        return {sat: client_update(self.template, self.data, self.clients[self.index[sat]],
                                   self.index[sat], head, self.cfg.train, round_idx)
                for sat in sats}

    # ------------------------------------------------------------------ helpers
    def _book(self, acct: Accounting, res: TransferResult, tr: Track, model: bool) -> Track:
        acct.book_transfer(res, self.net.stations)
        if model:
            acct.exchanged_bytes += res.n_bytes
        return tr.after(res)

    def _compute(self, acct: Accounting, sat: str, tr: Track, flops: float) -> Track:
        acct.compute_j[sat] += self.sat_hw.energy_j(flops)
        return tr.add("onboard_compute_s", self.sat_hw.seconds(flops))

    def client(self, sat: str) -> SatelliteClient:
        return self.clients[self.index[sat]]

    # ------------------------------------------------------------------ a round
    def run_round(self, st: RunState) -> RunState:
        """Simulate and train round ``st.round + 1``; returns the next state."""
        r = st.round + 1
        root = None
        if self.ring and len({c.plane for c in self.clients if c.n > 0}) > 1:
            ahead = _Round(self, st, self.net.copy(), quiet=True)  # a what-if: nothing is kept
            ahead.simulate()
            root = ahead.best_root()
        rnd = _Round(self, st, self.net, root)
        rnd.simulate()
        if not rnd.ready:
            raise HorizonReached(f"round {r}: no satellite could train "
                                 f"({len(rnd.dropped)} dropped)")
        updates = self.trainer(r, st.head, sorted(rnd.ready, key=self.index.get))
        if self.ring:
            end, head, holder, label = rnd.combine_rings(updates)
        else:
            end, head = rnd.star_end(rnd.arrived, updates)
            holder, label = GROUND, "star"
        if rnd.q.sent > end.t:  # a transfer the ground could not know would fail started later
            end = end.wait_until(rnd.q.sent)
        if "deadline" in rnd.dropped.values():  # stragglers are only known at the deadline
            end = end.wait_until(rnd.deadline)
        acct = rnd.acct
        acc = accuracy(self.template, head, self.data.test_x, self.data.test_y)
        participants = [s for s in rnd.ready if s not in rnd.dropped]
        row = round_row(round_idx=r, scheme=self.cfg.scheme, start=rnd.start, end=end, acct=acct,
                        accuracy=acc, participants=participants, dropped=rnd.dropped,
                        aggregation=label)
        energy = {k: list(v) for k, v in st.energy.items()}
        for sat in set(acct.compute_j) | set(acct.transmit_j):
            e = energy.setdefault(sat, [0.0, 0.0])
            e[0] += acct.compute_j.get(sat, 0.0)
            e[1] += acct.transmit_j.get(sat, 0.0)
        have = sorted(set(st.have_features) | set(rnd.feats)) if self.cfg.comm.reuse_features \
            else []
        return RunState(round=r, t=end.t, holder=holder, head=head, have_features=have,
                        rows=[*st.rows, row], energy=energy)


class _Round:
    """The events of one round (see the module docstring): who holds the head, features and an
    update, and when. :meth:`simulate` runs the transfers on ``net``; aggregation numerics come
    after. ``root``: where the plane sums go as soon as they exist (None: nowhere yet, as in the
    look-ahead, or after the round if a ring failed)."""

    def __init__(self, sim: RoundSimulator, st: RunState, net: FedNetwork,
                 root: str | None = None, quiet: bool = False) -> None:
        self.sim, self.st, self.net, self.root, self.quiet = sim, st, net, root, quiet
        self.acct, self.start = Accounting(), Track(st.t)
        self.q = Transfers(net)
        dl = sim.cfg.comm.round_deadline_s
        self.deadline = math.inf if dl is None else st.t + dl
        self.dropped: dict[str, str] = {c.sat: "no_data" for c in sim.clients if c.n == 0}
        self.active = [c.sat for c in sim.clients if c.n > 0]
        self.heads: dict[str, Track] = {}
        self.feats: dict[str, Track] = {}
        self.waiting = dict.fromkeys(self.active, 2)  # the head and the features
        self.planes: dict[int, list[str]] = {}  # members in client order, planes as they appear
        for sat in self.active:
            self.planes.setdefault(sim.client(sat).plane, []).append(sat)
        self.unsettled = {p: len(sats) for p, sats in self.planes.items()}
        self.late_planes: set[int] = set()
        self.closed: set[int] = set()  # planes whose members are known (settled or deadline)
        self.ready: dict[str, Track] = {}  # trained in time
        self.arrived: dict[str, Track] = {}  # star: updates on the ground
        self.fallback: dict[str, Track] = {}  # rings that failed: their updates on the ground
        self.fallback_sats: list[str] = []
        self.rings: dict[int, _RingTiming] = {}
        self.numel = sum(v.numel() for v in st.head.values()) + 1  # what a ring carries
        self.at_root: list[Track] = []  # plane sums that reached the root
        self.lost_sums: list[str] = []

    # ------------------------------------------------------------------ events
    def simulate(self) -> None:
        for sat in self.active:
            self._receive(sat)
        self.q.run(until=self.start.t)  # broadcasts that fail are known before features start
        reuse = self.sim.cfg.comm.reuse_features
        need = [s for s in self.active if s not in self.dropped
                and not (reuse and s in self.st.have_features)]
        for sat in self.active:
            if sat not in need:
                self._settle(sat)
        self._features(need)
        if math.isfinite(self.deadline):
            self.q.at(max(self.deadline, self.start.t), self._deadline_passed)
        self.q.run()

    def _deadline_passed(self) -> None:
        """Whoever still waits for its head or features is dropped now: its plane's ring starts
        with the members that made it (the ground knows the deadline; nothing waits for them)."""
        for plane, sats in self.planes.items():
            if plane in self.closed:
                continue
            for sat in sats:
                if self.waiting[sat] > 0 and sat not in self.dropped:
                    self.dropped[sat] = "deadline"
            self.late_planes.add(plane)
            self._close(plane)

    def _receive(self, sat: str) -> None:
        """The global head reaches ``sat`` (first step of every round after the first)."""
        holder = self.st.holder
        if holder in (PRELOADED, sat):
            self.heads[sat] = self.start
            self._settle(sat)
            return
        direct = holder == GROUND and not self.sim.ring

        def received(res: TransferResult) -> None:
            if res.delivered:
                self.heads[sat] = self.sim._book(self.acct, res, self.start, True)
            else:
                self.dropped.setdefault(sat, "no_broadcast")
            self._settle(sat)

        self.q.request(self.start.t, holder, sat, self.sim.costs.update_bytes, direct=direct,
                       then=received)

    def _features(self, need: list[str]) -> None:
        sim, c, acct = self.sim, self.sim.costs, self.acct
        if not sim.collab:
            for sat in need:
                self.feats[sat] = sim._compute(acct, sat, self.start,
                                               sim.client(sat).n * c.onboard_forward_flops)
                self._settle(sat)
            return
        embedded = {s: sim._compute(acct, s, self.start, sim.client(s).n * c.embed_flops)
                    for s in need}
        key = (self.st.round, self.start.t, tuple(need))
        if sim._drain is None or sim._drain[0] != key:  # the look-ahead's is the same
            drained = Accounting()
            down = drain_to_ground(self.net, embedded,
                                   {s: sim.client(s).n * c.cut_bytes for s in need},
                                   sharing=sim.sharing, maxflow=sim.cfg.comm.maxflow,
                                   acct=drained)
            sim._drain = (key, down, drained)
        _, down, drained = sim._drain
        _merge(acct, drained)
        for sat in need:
            if sat not in down:
                self.dropped.setdefault(sat, "no_downlink")
                self._settle(sat)
                continue
            n = sim.client(sat).n
            acct.ground_j += sim.ground_hw.energy_j(n * c.encode_flops)
            enc = down[sat].add("ground_compute_s", sim.ground_hw.seconds(n * c.encode_flops))

            def uplinked(res: TransferResult, sat: str = sat, enc: Track = enc) -> None:
                if res.delivered:
                    self.feats[sat] = self.sim._book(self.acct, res, enc, model=False)
                else:
                    self.dropped.setdefault(sat, "no_feature_uplink")
                self._settle(sat)

            self.q.request(enc.t, GROUND, sat, n * c.feature_bytes, direct=not sim.sharing,
                           then=uplinked, live=self._before_deadline)

    def _settle(self, sat: str) -> None:
        """One of ``sat``'s two inputs (head, features) is in; with both, it trains."""
        self.waiting[sat] -= 1
        if self.waiting[sat]:
            return
        sim = self.sim
        if sat not in self.dropped:
            tr = latest([self.heads[sat], self.feats.get(sat, self.start)])
            flops = sim.cfg.train.local_epochs * sim.client(sat).n * sim.costs.train_flops
            tr = sim._compute(self.acct, sat, tr, flops)
            if tr.t > self.deadline:
                self.dropped[sat] = "deadline"
                self.late_planes.add(sim.client(sat).plane)
            else:
                self.ready[sat] = tr
                if not sim.ring:
                    self._upload(sat, tr, self.arrived)
        plane = sim.client(sat).plane
        self.unsettled[plane] -= 1
        if not self.unsettled[plane] and plane not in self.closed:
            self._close(plane)

    def _before_deadline(self, t: float) -> bool:
        return t <= self.deadline

    def _close(self, plane: int) -> None:
        """``plane``'s members are known (all settled, or the deadline passed)."""
        self.closed.add(plane)
        if self.sim.ring:
            self._start_ring(plane)

    def _upload(self, sat: str, tr: Track, sink: dict[str, Track]) -> None:
        """Star: ``sat`` sends its update straight down to a station it sees."""
        def uploaded(res: TransferResult) -> None:
            if res.delivered:
                sink[sat] = self.sim._book(self.acct, res, tr, True)
            else:
                self.dropped[sat] = "no_uplink"

        self.q.request(tr.t, sat, GROUND, self.sim.costs.update_bytes, direct=True,
                       then=uploaded)

    def _start_ring(self, plane: int) -> None:
        """Every satellite of ``plane`` is settled: its members are known, the ring starts."""
        sats = [s for s in self.planes[plane] if s in self.ready]
        if not sats:
            return
        start = self.q.now
        if plane in self.late_planes:  # stragglers are only known at the deadline
            start = max(start, self.deadline)
        for sat in sats:
            self.ready[sat] = self.ready[sat].wait_until(start)
        self.rings[plane] = ring = _RingTiming(
            self.q, self._book_model, plane, sats, [self.ready[s] for s in sats], self.numel,
            self._plane_sum, self.ring_failed, lambda ring, j: self._check_done())
        ring.start()

    def _book_model(self, res: TransferResult, tr: Track) -> Track:
        return self.sim._book(self.acct, res, tr, True)

    def _leaders(self) -> list[tuple[str, Track]]:
        """Each ring's first holder of its plane's sum, in plane order."""
        return [(r.sats[r.leader], r.done[r.leader]) for p in self.planes
                if (r := self.rings.get(p)) is not None and not r.failed and r.leader is not None]

    def best_root(self) -> str | None:
        """After a look-ahead :meth:`simulate`: where the plane sums should meet (a plane leader
        or the ground, whichever gets them all first from when each exists), or None when
        there is nothing to combine or a ring failed."""
        leaders = self._leaders()
        if len(leaders) < 2 or self.fallback_sats:
            return None
        return self._choose_root(self.net, [(s, tr, tr.t) for s, tr in leaders])

    def _choose_root(self, net: FedNetwork, leaders: list[tuple[str, Track, float]]
                     ) -> str | None:
        """The root whose ``(holder, track, send time)`` sums all arrive first (what-ifs on
        ``net``); plane leaders first, then the ground (None: no root gets them all)."""
        nb = self.numel * WIRE_BYTES
        best: tuple[float, str] | None = None
        for root in [s for s, _, _ in leaders if s != GROUND] + [GROUND]:
            ends = []
            for sat, tr, t in leaders:
                res = None if sat == root else net.route(sat, root, nb, t)
                if res is not None and not res.delivered:
                    break
                ends.append(tr.t if res is None else res.t_arrival)
            else:
                end = max(ends) + (self.sim.cfg.comm.backhaul_s if root == GROUND else 0.0)
                if best is None or end < best[0]:
                    best = (end, root)
        return None if best is None else best[1]

    def _plane_sum(self, ring: _RingTiming, j: int) -> None:
        """Ring ``ring``'s node ``j`` holds its plane's sum first: it goes to the root now."""
        if self.root is not None and self.root not in ring.sats:
            self._send_sum(ring.sats[j], ring.done[j], ring.done[j].t)
        self._check_done()

    def _check_done(self) -> None:
        """Once the new head's time is known, the rings' later sends are cancelled (nobody
        needs them; the next round starts then)."""
        if len(self.closed) < len(self.planes) or self.fallback_sats or self.lost_sums:
            return
        rings = list(self.rings.values())
        if self.root is None:
            if len(rings) != 1 or rings[0].leader is None:
                return
            end = rings[0].done[rings[0].leader].t
        else:
            senders = [r for r in rings if self.root not in r.sats]
            if len(self.at_root) < len(senders):
                return
            times = [tr.t for tr in self.at_root]
            if self.root != GROUND:
                ring = next((r for r in rings if self.root in r.sats), None)
                own = None if ring is None else ring.done.get(ring.sats.index(self.root))
                if own is None:
                    return
                times.append(own.t)
            end = max(times)
        for ring in rings:
            ring.stop_at = min(ring.stop_at, end)

    def _send_sum(self, sat: str, tr: Track, t: float) -> None:
        def arrived(res: TransferResult) -> None:
            if res.delivered:
                self.at_root.append(self._book_model(res, tr.wait_until(t)))
                self._check_done()
            else:
                self.lost_sums.append(f"{sat} -> {self.root}: {res.reason}")

        self.q.request(t, sat, self.root, self.numel * WIRE_BYTES, then=arrived)

    def ring_failed(self, ring: _RingTiming, res: TransferResult) -> None:
        if not self.quiet:
            warnings.warn(f"plane {ring.plane}: ring all-reduce failed ({res.reason}); its "
                          "satellites fall back to the ground", stacklevel=2)
        self.fallback_sats.extend(ring.sats)
        for sat in ring.sats:
            self._upload(sat, self.ready[sat].wait_until(self.q.now), self.fallback)

    # ------------------------------------------------------------------ aggregation
    def star_end(self, arrived: dict[str, Track], updates: dict[str, State]
                 ) -> tuple[Track, State]:
        """FedAvg of the updates that reached the ground in time; the round's end there."""
        late = [s for s, tr in arrived.items() if tr.t > self.deadline]
        for sat in late:
            self.dropped[sat] = "deadline"
        on_time = {s: tr for s, tr in arrived.items() if s not in late}
        if not on_time:
            raise HorizonReached("no update reached the ground")
        sats = sorted(on_time, key=self.sim.index.get)
        head = weighted_average([updates[s] for s in sats], [self.sim.client(s).n for s in sats])
        end = latest(list(on_time.values()))
        if late or any(v == "deadline" for v in self.dropped.values()):
            end = end.wait_until(self.deadline)  # the ground waits out the deadline for stragglers
        return end.add("propagation_s", self.sim.cfg.comm.backhaul_s), head

    def combine_rings(self, updates: dict[str, State]) -> tuple[Track, State, str, str]:
        """Plane sums (ring numerics), a ground-held partial sum of failed rings, then their
        combination at the root: ``(end, head, holder, label)``."""
        sim = self.sim
        sums: dict[int, tuple[str, torch.Tensor, Track]] = {}
        for p in self.planes:
            ring = self.rings.get(p)
            if ring is None or ring.failed:
                continue
            vecs = [weighted_vector(updates[s], sim.client(s).n) for s in ring.sats]
            out, _ = ring_allreduce(vecs)
            sums[p] = (ring.sats[ring.leader], out[ring.leader], ring.done[ring.leader])
        if self.fallback_sats:
            end, head = self.star_end(self.fallback, updates)
            # ground-held partial sum joins the inter-orbit step as a virtual plane
            n = sum(sim.client(s).n for s in self.fallback_sats if s not in self.dropped)
            sums[-1] = (GROUND, weighted_vector(head, n), end)
        if not sums:
            raise HorizonReached("no plane finished its ring")
        total = sum(v for _, v, _ in sums.values())
        head = mean_from_sum(total, updates[next(iter(self.ready))])
        leaders = [(sat, tr) for sat, _, tr in sums.values()]
        if len(leaders) == 1 and leaders[0][0] != GROUND:
            return leaders[0][1], head, leaders[0][0], "ring"
        if self.root is None:  # a ring failed: combine once every sum exists, all at once
            t = max(max(tr.t for _, tr in leaders), self.q.sent)
            self.root = self._choose_root(self.net, [(s, tr, t) for s, tr in leaders])
            if self.root is None:
                raise HorizonReached("plane sums could not be combined within the horizon")
            for sat, tr in leaders:
                if sat != self.root:
                    self._send_sum(sat, tr, t)
            self.q.run()
        return self._end_at_root(leaders), head, self.root, \
            "ring+ground" if self.root == GROUND else "ring+isl"

    def _end_at_root(self, leaders: list[tuple[str, Track]]) -> Track:
        if self.lost_sums:
            raise HorizonReached(f"plane sums could not be combined within the horizon: "
                                 f"{self.lost_sums[0]}")
        tracks = list(self.at_root)
        if self.root == GROUND:
            tracks += [tr for sat, tr in leaders if sat == GROUND]
            return latest(tracks).add("propagation_s", self.sim.cfg.comm.backhaul_s)
        ring = next((r for r in self.rings.values() if self.root in r.sats), None)
        own = None if ring is None else ring.done.get(ring.sats.index(self.root))
        if own is None:
            raise HorizonReached(f"the root {self.root} never held its plane's sum")
        return latest([*tracks, own])


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
                 on_hold: Callable[[_RingTiming, int], None] | None = None) -> None:
        self.q, self.book, self.plane, self.sats = q, book, plane, sats
        self.tracks = list(tracks)
        self.on_sum, self.on_fail, self.on_hold = on_sum, on_fail, on_hold
        self.stop_at = math.inf
        self.done: dict[int, Track] = {}
        self.leader: int | None = None
        self.failed = False
        k = len(sats)
        base, extra = divmod(numel, k)  # torch.tensor_split's chunk sizes
        self.chunk_bytes = [(base + (c < extra)) * WIRE_BYTES for c in range(k)]

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


def _merge(acct: Accounting, other: Accounting) -> None:
    for k, v in other.bytes.items():
        acct.bytes[k] = acct.bytes.get(k, 0.0) + v
    for k, v in other.transmit_j.items():
        acct.transmit_j[k] += v
    acct.ground_j += other.ground_j
    acct.exchanged_bytes += other.exchanged_bytes
