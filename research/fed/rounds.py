"""One federated round on the contact plan, for any scheme and topology, in simulated time.

A round starts when the previous global head exists (on the ground or on a satellite, its
``holder``) and ends when the new one does; its broadcast to the satellites is the first step of
the next round, overlapped with (re-)computing the training inputs, as an operator would
pipeline it. Two registered axes decide the rest:

* the **scheme** (:mod:`research.fed.schemes`): what each satellite computes and what crosses a
  link before it trains (``onboard``: the whole model on board; ``collaborative``: embeddings
  down, features back up);
* the **topology** (:mod:`research.fed.topologies`): where updates go and how they become the
  next head (``star`` through the ground stations; ``ring`` per plane and then across planes;
  ``gossip`` over ISLs, no root).

Every transfer (broadcast, feature uplink, update upload, ring chunk, plane sum) is booked on the
run's :class:`~research.fed.network.FedNetwork`, whose bookings persist across rounds, so model
uploads and downloads wait for each other on shared links, transmitters and antennas. A round is
simulated as events: each transfer is sent when it is popped from a time-ordered queue
(:class:`~research.fed.network.Transfers`), so transfers are booked in time order, first come
first served. A satellite *settles* once its head and training inputs are in (or it is dropped);
it then trains, and the topology hears of it. A plane is *closed* once every member has settled
or the deadline passed; the ring starts then, with the members that made it.

With ``comm.round_deadline_s``, the ground knows the deadline: inputs that would reach a
satellite after it are not sent, whoever is still waiting at the deadline is dropped, and a
round with a deadline drop ends no earlier than its deadline (nobody can know earlier that no
one else comes). Satellites without data, without contacts or past the deadline are dropped from
the round with the reason in the ledger; a dropped update is discarded, never averaged in later.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from devices import get_device
from research.fed.aggregate import (
    WIRE_BYTES,
    State,
    ema_step,
    server_step,
    weighted_average,
)
from research.fed.clients import Dataset, SatelliteClient, client_update, held_out_accuracies
from research.fed.config import FedConfig
from research.fed.cost import Costs
from research.fed.ledger import Accounting, Track, latest, round_row
from research.fed.network import GROUND, FedNetwork, Transfers
from research.fed.privacy import Privacy
from research.fed.schemes import get_scheme
from research.fed.secagg import secure_weighted_mean
from research.fed.secure_rounds import SecAggStages
from research.fed.topologies import EVERY_SATELLITE, HorizonReached, get_topology
from research.orbit import TransferResult

__all__ = ["PRELOADED", "HorizonReached", "ModelTooLarge", "RoundSimulator", "RunState",
           "SecureRound", "SecureTrainer", "Trainer", "timing_only"]

PRELOADED = "preloaded"
Trainer = Callable[[int, State, list[str]], dict[str, State]]
"""``(round, global head, satellites) -> {satellite: updated head}``: the engine's local step."""


@dataclass(frozen=True)
class SecureRound:
    """What an engine that aggregates securely itself (Flower's SecAgg+) is asked for: the mean
    of ``survivors``' updates (weights in ``cohort`` order), from masked vectors of ``cohort``,
    ``trained`` satellites having trained (the cohort of satellite-level DP noise)."""

    round: int
    head: State
    cohort: list[str]
    survivors: list[str]
    weights: list[float]
    threshold: int
    trained: int


SecureTrainer = Callable[[SecureRound], State]
"""The engine's local updates and secure aggregation in one: returns the new head."""


def timing_only(round_idx: int, head: State, sats: list[str]) -> dict[str, State]:
    """A :data:`Trainer` that skips the numerics: every update is the global head (simulated
    time and bytes do not depend on them)."""
    return dict.fromkeys(sats, head)


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
    server_velocity: dict[str, torch.Tensor] = field(default_factory=dict)
    head_average: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def released(self) -> dict[str, torch.Tensor]:
        """The head a run reports: the moving average when ``train.ema_decay`` keeps one."""
        return self.head_average or self.head


class ModelTooLarge(ValueError):
    """The scheme's on-board part does not fit the satellite's memory: refused, not simulated."""


class RoundSimulator:
    """Runs rounds of one scheme and topology over a network, a dataset and clients.

    ``net`` holds the run's bookings: use one simulator (and network) per run.
    """

    def __init__(self, cfg: FedConfig, net: FedNetwork, clients: list[SatelliteClient],
                 costs: Costs, template: nn.Module, data: Dataset,
                 trainer: Trainer | None = None,
                 secure_trainer: SecureTrainer | None = None) -> None:
        self.cfg, self.net, self.clients, self.costs = cfg, net, clients, costs
        self.template, self.data = template, data
        self.sat_hw = get_device(cfg.profiles.satellite).require_throughput()
        self.ground_hw = get_device(cfg.profiles.ground).require_throughput()
        self.trains_encoder = cfg.model.trainable != "head"
        self.scheme = get_scheme(cfg.scheme)(self)
        self.update_bytes = self.scheme.update_bytes(costs)
        self.topology = get_topology(cfg.topology)
        need, have = self.scheme.onboard_param_bytes(costs), self.sat_hw.memory_bytes
        if need > have:
            raise ModelTooLarge(
                f"scheme {cfg.scheme!r} with {cfg.model.backbone} needs {need / 2**20:.0f} MiB of "
                f"weights on each satellite; {self.sat_hw.name} has {have / 2**20:.0f} MiB")
        self.index = {c.sat: i for i, c in enumerate(clients)}
        self.privacy = Privacy(cfg.privacy, cfg.train)
        self.trainer: Trainer = trainer or self.train_local
        self.secure_trainer = secure_trainer

    def train_local(self, round_idx: int, head: State, sats: list[str]) -> dict[str, State]:
        """Local updates of ``sats`` in this process (the default engine)."""
        return {sat: client_update(self.template, self.data, self.clients[self.index[sat]],
                                   self.index[sat], head, self.cfg.train, round_idx,
                                   self.privacy, cohort=len(sats),
                                   split=self.scheme.split_learning)
                for sat in sats}

    def _secure(self, rnd: _Round, st: RunState, end: Track, plain: State, holder: str,
                label: str, updates: dict[str, State], participants: list[str]
                ) -> tuple[Track, State, str, str, dict]:
        """Stage 6 of secure aggregation on the network, and the head from masked vectors
        (:func:`secure_weighted_mean`; equal to ``plain`` to the fixed point's resolution). A
        round that cannot be unmasked keeps the previous head and holder."""
        sa, cfg = rnd.secagg, self.cfg.secagg
        cohort, t = sa.cohort or [], sa.t
        unmasked, ok = sa.unmask(end, holder, participants)
        if not ok:
            for sat in participants:
                rnd.dropped[sat] = "secagg_threshold"
            return unmasked, st.head, st.holder, "secagg_failed", sa.columns(None)
        weights = [rnd.weight(s) for s in cohort]
        if self.secure_trainer is not None:  # Flower's SecAgg+ (its own fixed point)
            head = self.secure_trainer(SecureRound(rnd.st.round + 1, st.head, list(cohort),
                                                   list(participants), weights, t,
                                                   len(rnd.ready)))
            error = None  # no plain head to compare with: the engine saw masked vectors only
        else:
            gone = {i for i, s in enumerate(cohort) if s not in participants}
            head, _ = secure_weighted_mean([updates.get(s, st.head) for s in cohort], weights,
                                           gone, bits=cfg.bits, frac_bits=cfg.frac_bits,
                                           threshold=t)
            error = max(float((head[k] - plain[k]).abs().max()) for k in head)
        return unmasked, head, holder, label, sa.columns(error)

    # ------------------------------------------------------------------ services
    def book(self, acct: Accounting, res: TransferResult, tr: Track, model: bool) -> Track:
        """Book a delivered transfer's bytes and energy; the track after it."""
        acct.book_transfer(res, self.net.stations)
        if model:
            acct.exchanged_bytes += res.n_bytes
        return tr.after(res)

    def compute(self, acct: Accounting, sat: str, tr: Track, flops: float) -> Track:
        """``flops`` on ``sat``'s device: energy booked, the track after it."""
        acct.compute_j[sat] += self.sat_hw.energy_j(flops)
        return tr.add("onboard_compute_s", self.sat_hw.seconds(flops))

    def client(self, sat: str) -> SatelliteClient:
        return self.clients[self.index[sat]]

    # ------------------------------------------------------------------ a round
    def run_round(self, st: RunState) -> RunState:
        """Simulate and train round ``st.round + 1``; returns the next state."""
        r = st.round + 1
        plan = None
        if self.topology.lookahead and len({c.plane for c in self.clients if c.n > 0}) > 1:
            ahead = _Round(self, st, self.net.copy(), quiet=True)  # a what-if: nothing is kept
            ahead.simulate()
            plan = ahead.topology.plan()
        rnd = _Round(self, st, self.net, plan)
        rnd.simulate()
        if rnd.secagg is not None and rnd.secagg.aborted is not None:
            return self._failed(rnd, st, rnd.secagg.aborted)
        if not rnd.ready:
            raise HorizonReached(f"round {r}: no satellite could train "
                                 f"({len(rnd.dropped)} dropped)")
        if rnd.secagg is not None and self.secure_trainer is not None:
            updates = dict.fromkeys(rnd.ready, st.head)  # timing only: the engine aggregates
        else:
            updates = self.trainer(r, st.head, sorted(rnd.ready, key=self.index.get))
        end, head, holder, label = rnd.topology.finish(updates)
        end = self._known_end(rnd, end)
        participants = [s for s in rnd.ready if s not in rnd.dropped]
        extra: dict = dict(rnd.topology.columns())
        if rnd.secagg is not None:
            end, head, holder, label, extra = self._secure(rnd, st, end, head, holder, label,
                                                           updates, participants)
            participants = [s for s in rnd.ready if s not in rnd.dropped]
        velocity = None  # a round that released no new average keeps head and velocity
        if label != "secagg_failed" and participants:
            t = self.cfg.train
            head, velocity = server_step(st.head, head, st.server_velocity, t.server_lr,
                                         t.server_momentum)
        return self._next_state(rnd, st, end, head, holder, label, participants, extra,
                                velocity)

    @staticmethod
    def _known_end(rnd: _Round, end: Track) -> Track:
        """``end`` no earlier than the round's last send (a transfer the ground could not know
        would fail started later) nor, after a deadline drop, than the deadline (stragglers are
        only known then)."""
        if rnd.q.sent > end.t:
            end = end.wait_until(rnd.q.sent)
        if "deadline" in rnd.dropped.values():
            end = end.wait_until(rnd.deadline)
        return end

    def _failed(self, rnd: _Round, st: RunState, at: Track) -> RunState:
        """A round secure aggregation gave up in its setup: the previous head stays where it
        was."""
        return self._next_state(rnd, st, self._known_end(rnd, at), st.head, st.holder,
                                "secagg_failed", [], rnd.secagg.columns(None))

    def _next_state(self, rnd: _Round, st: RunState, end: Track, head: State, holder: str,
                    label: str, participants: list[str], extra: dict,
                    velocity: State | None = None) -> RunState:
        """The ledger row of the round that ends at ``end`` with ``head`` at ``holder``
        (``velocity``: the server optimiser's; None keeps the previous one)."""
        r, acct = st.round + 1, rnd.acct
        average = st.head_average  # a round that released nothing leaves the average as it was
        if self.cfg.train.ema_decay and velocity is not None:
            average = ema_step(average, head, self.cfg.train.ema_decay)
        held_out = held_out_accuracies(self.template, average or head, self.data)
        row = round_row(round_idx=r, scheme=self.cfg.scheme, start=rnd.start, end=end, acct=acct,
                        accuracy=held_out.pop("accuracy"), participants=participants,
                        dropped=rnd.dropped, aggregation=label)
        row.update(held_out)
        row.update(extra)
        row.update(self.privacy.columns([*st.rows, row], trained=len(rnd.ready),
                                        shard_sizes=[c.n for c in self.clients]))
        energy = {k: list(v) for k, v in st.energy.items()}
        for sat in sorted(set(acct.compute_j) | set(acct.transmit_j)):  # not hash order
            e = energy.setdefault(sat, [0.0, 0.0])
            e[0] += acct.compute_j.get(sat, 0.0)
            e[1] += acct.transmit_j.get(sat, 0.0)
        have = sorted(set(st.have_features) | set(rnd.inputs)) if self.cfg.comm.reuse_features \
            else []
        return RunState(round=r, t=end.t, holder=holder, head=head, have_features=have,
                        rows=[*st.rows, row], energy=energy,
                        server_velocity=st.server_velocity if velocity is None else velocity,
                        head_average=average)


class _Round:
    """The events of one round (see the module docstring): who holds the head, training inputs
    and an update, and when. :meth:`simulate` runs the transfers on ``net``; the scheme and the
    topology hook into it; aggregation numerics come after (``topology.finish``)."""

    def __init__(self, sim: RoundSimulator, st: RunState, net: FedNetwork,
                 plan: object = None, quiet: bool = False) -> None:
        self.sim, self.st, self.net, self.quiet = sim, st, net, quiet
        self.acct, self.start = Accounting(), Track(st.t)
        self.q = Transfers(net, beyond_horizon=self._beyond_horizon)
        self.cut: set[str] = set()  # satellites whose inputs the plan's end cut: deadline misses
        self.backhaul_s = sim.cfg.comm.backhaul_s
        dl = sim.cfg.comm.round_deadline_s
        self.deadline = math.inf if dl is None else st.t + dl
        self.dropped: dict[str, str] = {c.sat: "no_data" for c in sim.clients if c.n == 0}
        self.active = [c.sat for c in sim.clients if c.n > 0]
        self.heads: dict[str, Track] = {}
        self.inputs: dict[str, Track] = {}
        self.waiting = dict.fromkeys(self.active, 2)  # the head and the training inputs
        self.training: set[str] = set()  # local updates under way (split learning's take time)
        self.planes: dict[int, list[str]] = {}  # members in client order, planes as they appear
        for sat in self.active:
            self.planes.setdefault(sim.client(sat).plane, []).append(sat)
        self.unsettled = {p: len(sats) for p, sats in self.planes.items()}
        self.late_planes: set[int] = set()
        self.closed: set[int] = set()  # planes whose members are known (settled or deadline)
        self.ready: dict[str, Track] = {}  # trained in time
        self.topology = sim.topology(self, plan)
        self.secagg = SecAggStages(self, sim.cfg.secagg) if sim.cfg.secagg.enabled else None

    @property
    def element_bytes(self) -> float:
        """Bytes per value of an update on the wire (masked under secure aggregation)."""
        return WIRE_BYTES if self.secagg is None else self.secagg.element_bytes

    def n(self, sat: str) -> int:
        """``sat``'s number of training images."""
        return self.sim.client(sat).n

    def weight(self, sat: str) -> float:
        """``sat``'s weight in the mean: its image count (1 each under satellite-level DP)."""
        return self.sim.privacy.weight(self.n(sat))

    # ------------------------------------------------------------------ events
    def simulate(self) -> None:
        for sat in self.active:
            self._receive(sat)
        if self.secagg is not None:
            self.secagg.start(list(self.active))
        self.q.run(until=self.start.t)  # broadcasts that fail are known before inputs start
        reuse = self.sim.cfg.comm.reuse_features
        need = [s for s in self.active if s not in self.dropped
                and not (reuse and s in self.st.have_features)]
        for sat in self.active:
            if sat not in need:
                self._settle(sat)
        self.sim.scheme.prepare(self, need)
        if math.isfinite(self.deadline):
            self.q.at(max(self.deadline, self.start.t), self._deadline_passed)
        self.q.run()

    def inputs_ready(self, sat: str, tr: Track) -> None:
        """The scheme's report: ``sat`` has what it trains on at ``tr``."""
        self.inputs[sat] = tr
        self._settle(sat)

    def drop(self, sat: str, reason: str) -> None:
        """The scheme's report: ``sat`` cannot get its training inputs (``reason``)."""
        self.mark_dropped(sat, reason)
        self._settle(sat)

    def mark_dropped(self, sat: str, reason: str) -> None:
        """``sat`` is out of the round for ``reason``, or for the deadline when the plan's end
        cut its inputs (then its plane is late, as for any deadline miss)."""
        if sat in self.cut:
            reason = "deadline"
            self.late_planes.add(self.sim.client(sat).plane)
        self.dropped.setdefault(sat, reason)

    def beyond_plan(self, sat: str, src: str, dst: str, what: str, *, direct: bool = False,
                    bound: bool = True) -> None:
        """``sat`` cannot get ``what`` from ``src`` to ``dst`` within the plan. Between nodes the
        plan never joins that is a failure the ground knows (the caller drops ``sat``). A
        transfer due before the round's deadline (``bound``), with the deadline inside the plan,
        missed it (the ground learns so at the deadline). Otherwise the round's outcome lies
        beyond the plan and the run stops after the previous round, rather than counting the
        plan's end as a failure known at once (which made near-empty rounds of no duration at
        the end of every plan)."""
        if self.net.never_connected(src, dst, direct=direct):
            return
        if bound and self.deadline <= self.net.horizon_s:
            self.cut.add(sat)
            return
        raise HorizonReached(f"round {self.st.round + 1}: {what} {src} -> {dst} cannot settle "
                             f"within the plan ({self.net.horizon_s:.0f} s)")

    def _beyond_horizon(self, src: str, dst: str, direct: bool, res: TransferResult,
                        bound: bool) -> None:
        """The :class:`Transfers` hook: a transfer the plan's end cut short."""
        sat = dst if src == GROUND or self.net.plan.is_station(src) else src
        self.beyond_plan(sat, src, dst, f"a transfer sent at t={res.t0:.0f} s", direct=direct,
                         bound=bound)

    def before_deadline(self, t: float) -> bool:
        """Whether a transfer sent at ``t`` is still worth sending (``live`` of a request)."""
        return t <= self.deadline

    def book_model(self, res: TransferResult, tr: Track) -> Track:
        """Book a delivered transfer of model state (head, update, ring chunk, plane sum)."""
        return self.sim.book(self.acct, res, tr, True)

    def _receive(self, sat: str) -> None:
        """The global head reaches ``sat`` (first step of every round after the first)."""
        holder = self.st.holder
        if holder in (PRELOADED, EVERY_SATELLITE, sat):
            self.heads[sat] = self.start
            self._settle(sat)
            return
        direct = holder == GROUND and self.topology.direct

        def received(res: TransferResult) -> None:
            if res.delivered:
                self.heads[sat] = self.book_model(res, self.start)
            else:
                self.mark_dropped(sat, "no_broadcast")
            self._settle(sat)

        self.q.request(self.start.t, holder, sat, self.sim.update_bytes, direct=direct,
                       then=received, live=self.before_deadline)

    def _settle(self, sat: str) -> None:
        """One of ``sat``'s two inputs (head, training inputs) is in; with both, it trains (the
        scheme books how)."""
        self.waiting[sat] -= 1
        if self.waiting[sat]:
            return
        if sat in self.dropped:
            self._trained(sat, None)
            return
        self.training.add(sat)
        tr = latest([self.heads[sat], self.inputs.get(sat, self.start)])
        self.sim.scheme.train(self, sat, tr, lambda end: self._trained(sat, end))

    def _trained(self, sat: str, tr: Track | None) -> None:
        """``sat``'s local update ends at ``tr`` (None: it failed); its plane may close."""
        sim = self.sim
        self.training.discard(sat)
        if tr is not None and sat not in self.dropped:
            if tr.t > self.deadline:
                self.dropped[sat] = "deadline"
                self.late_planes.add(sim.client(sat).plane)
            else:
                self.ready[sat] = tr
                self.topology.trained(sat, tr)
        plane = sim.client(sat).plane
        self.unsettled[plane] -= 1
        if not self.unsettled[plane] and plane not in self.closed:
            self._close(plane)

    def _deadline_passed(self) -> None:
        """Whoever still waits for its head or inputs is dropped now: its plane closes with the
        members that made it (the ground knows the deadline; nothing waits for them)."""
        for plane, sats in self.planes.items():
            if plane in self.closed:
                continue
            for sat in sats:
                if (self.waiting[sat] > 0 or sat in self.training) and sat not in self.dropped:
                    self.dropped[sat] = "deadline"
            self.late_planes.add(plane)
            self._close(plane)

    def _close(self, plane: int) -> None:
        """``plane``'s members are known (all settled, or the deadline passed)."""
        self.closed.add(plane)
        self.topology.plane_closed(plane)

    # ------------------------------------------------------------------ star services
    def upload(self, sat: str, tr: Track, sink: dict[str, Track]) -> None:
        """``sat`` sends its update straight down to a station it sees (into ``sink``)."""
        if self.secagg is not None:  # a masked update, once the satellite holds its shares
            def armed() -> None:
                masked = self.secagg.armed_track(sat, tr)
                if masked is not None:  # None: out of the cohort (already dropped)
                    self._send_update(sat, masked, self.secagg.masked_bytes(), sink)

            self.secagg.when_armed([sat], armed)
            return
        self._send_update(sat, tr, self.sim.update_bytes, sink)

    def _send_update(self, sat: str, tr: Track, n_bytes: float, sink: dict[str, Track]) -> None:
        def uploaded(res: TransferResult) -> None:
            if res.delivered:
                sink[sat] = self.book_model(res, tr)
            else:
                self.dropped[sat] = "no_uplink"

        self.q.request(tr.t, sat, GROUND, n_bytes, direct=True, then=uploaded)

    def average_at_ground(self, arrived: dict[str, Track], updates: dict[str, State]
                          ) -> tuple[Track, State]:
        """FedAvg of the updates that reached the ground in time; the round's end there."""
        late = [s for s, tr in arrived.items() if tr.t > self.deadline]
        for sat in late:
            self.dropped[sat] = "deadline"
        on_time = {s: tr for s, tr in arrived.items() if s not in late}
        if not on_time:
            raise HorizonReached("no update reached the ground")
        sats = sorted(on_time, key=self.sim.index.get)
        head = weighted_average([updates[s] for s in sats], [self.weight(s) for s in sats])
        end = latest(list(on_time.values()))
        if late or any(v == "deadline" for v in self.dropped.values()):
            end = end.wait_until(self.deadline)  # the ground waits out the deadline for stragglers
        return end.add("propagation_s", self.backhaul_s), head
