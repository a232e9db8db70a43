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

Satellites without data, without contacts or past the deadline are dropped from the round with
the reason in the ledger; a dropped update is discarded, never averaged in later.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from devices import get_device
from research.fed.aggregate import (
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
from research.fed.network import GROUND, FedNetwork
from research.fed.schedule import drain_to_ground
from research.orbit import TransferResult, UnreachableError

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
    """Runs rounds of one scheme over a network, a dataset and clients."""

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

    def train_local(self, round_idx: int, head: State, sats: list[str]) -> dict[str, State]:
        """Local updates of ``sats`` in this process (the default engine)."""
        return {sat: client_update(self.template, self.data, self.clients[self.index[sat]],
                                   self.index[sat], head, self.cfg.train, round_idx)
                for sat in sats}

    # ------------------------------------------------------------------ helpers
    def _send(self, acct: Accounting, src: str, dst: str, n_bytes: float, tr: Track, *,
              direct: bool = False, model: bool = True) -> Track:
        res = self.net.transfer(src, dst, n_bytes, tr.t, direct=direct)
        return self._book(acct, res, tr, model)

    def _book(self, acct: Accounting, res: TransferResult, tr: Track, model: bool) -> Track:
        acct.book_transfer(res, self.net.stations)
        if model:
            acct.exchanged_bytes += res.n_bytes
        return tr.after(res)

    def _compute(self, acct: Accounting, sat: str, tr: Track, flops: float) -> Track:
        acct.compute_j[sat] += self.sat_hw.energy_j(flops)
        return tr.add("onboard_compute_s", self.sat_hw.seconds(flops))

    def _receive(self, acct: Accounting, st: RunState, sat: str, start: Track) -> Track:
        """The global head reaches ``sat`` (first step of every round after the first)."""
        nb = self.costs.update_bytes
        if st.holder == PRELOADED or st.holder == sat:
            return start
        if st.holder == GROUND:
            res = self.net.from_ground(sat, nb, start.t, direct=not self.ring)
            return self._book(acct, res, start, True)
        return self._send(acct, st.holder, sat, nb, start)

    # ------------------------------------------------------------------ phases
    def _features(self, acct: Accounting, need: list[SatelliteClient], start: Track,
                  dropped: dict[str, str]) -> dict[str, Track]:
        c = self.costs
        if not self.collab:
            return {k.sat: self._compute(acct, k.sat, start, k.n * c.onboard_forward_flops)
                    for k in need}
        ready = {k.sat: self._compute(acct, k.sat, start, k.n * c.embed_flops) for k in need}
        down = drain_to_ground(self.net, ready, {k.sat: k.n * c.cut_bytes for k in need},
                               sharing=self.sharing, maxflow=self.cfg.comm.maxflow, acct=acct)
        out = {}
        for k in need:
            if k.sat not in down:
                dropped[k.sat] = "no_downlink"
                continue
            acct.ground_j += self.ground_hw.energy_j(k.n * c.encode_flops)
            enc = down[k.sat].add("ground_compute_s",
                                  self.ground_hw.seconds(k.n * c.encode_flops))
            try:
                res = self.net.from_ground(k.sat, k.n * c.feature_bytes, enc.t,
                                           direct=not self.sharing)
            except UnreachableError:
                dropped[k.sat] = "no_feature_uplink"
                continue
            out[k.sat] = self._book(acct, res, enc, model=False)
        return out

    def _star(self, acct: Accounting, ready: dict[str, Track], updates: dict[str, dict],
              dropped: dict[str, str]) -> tuple[Track, dict, str]:
        arrived = {}
        for sat, tr in ready.items():
            try:
                res = self.net.to_ground(sat, self.costs.update_bytes, tr.t, direct=True)
            except UnreachableError:
                dropped[sat] = "no_uplink"
                continue
            arrived[sat] = self._book(acct, res, tr, True)
        deadline = self._deadline(ready)
        late = [s for s, tr in arrived.items() if tr.t > deadline]
        for sat in late:
            dropped[sat] = "deadline"
            del arrived[sat]
        if not arrived:
            raise HorizonReached("no update reached the ground")
        sats = sorted(arrived, key=self.index.get)
        head = weighted_average([updates[s] for s in sats],
                                [self.clients[self.index[s]].n for s in sats])
        end = latest(list(arrived.values()))
        if late or any(v == "deadline" for v in dropped.values()):
            end = end.wait_until(deadline)  # the ground waits out the deadline for stragglers
        end = end.add("propagation_s", self.cfg.comm.backhaul_s)
        return end, head, GROUND

    def _deadline(self, ready: dict[str, Track]) -> float:
        dl = self.cfg.comm.round_deadline_s
        return float("inf") if dl is None else self._t_start + dl

    def _ring(self, acct: Accounting, ready: dict[str, Track], updates: dict[str, dict],
              dropped: dict[str, str]) -> tuple[Track, dict, str]:
        planes: dict[int, list[str]] = {}
        for sat in sorted(ready, key=self.index.get):
            planes.setdefault(self.clients[self.index[sat]].plane, []).append(sat)
        sums: dict[int, tuple[str, torch.Tensor, Track]] = {}
        fallback: dict[str, Track] = {}
        for p, sats in planes.items():
            vecs = [weighted_vector(updates[s], self.clients[self.index[s]].n) for s in sats]
            trial = Accounting()

            def hop(i: int, j: int, nb: float, tr: Track, sats=sats, trial=trial) -> Track:
                return self._send(trial, sats[i], sats[j], nb, tr)

            try:
                out, tracks = ring_allreduce(vecs, [ready[s] for s in sats], hop)
            except UnreachableError as err:
                warnings.warn(f"plane {p}: ring all-reduce failed ({err}); its satellites "
                              "fall back to the ground", stacklevel=2)
                fallback.update({s: ready[s] for s in sats})
                continue
            _merge(acct, trial)
            lead = min(range(len(sats)), key=lambda i: tracks[i].t)
            sums[p] = (sats[lead], out[lead], tracks[lead])
        if fallback:
            end, head, _ = self._star(acct, fallback, updates, dropped)
            # ground-held partial sum joins the inter-orbit step as a virtual plane
            n = sum(self.clients[self.index[s]].n for s in fallback if s not in dropped)
            sums[-1] = (GROUND, weighted_vector(head, n), end)
        if not sums:
            raise HorizonReached("no plane finished its ring")
        total = sum(v for _, v, _ in sums.values())
        head = mean_from_sum(total, updates[next(iter(ready))])
        end, _, label = self._inter_orbit(acct, list(sums.values()))
        return end, head, label

    def _inter_orbit(self, acct: Accounting, leaders: list[tuple[str, torch.Tensor, Track]]
                     ) -> tuple[Track, str, str]:
        """Combine plane sums: gather at one leader over ISLs, or at the ground; earliest wins."""
        nb = leaders[0][1].numel() * 4
        if len(leaders) == 1 and leaders[0][0] != GROUND:
            self._holder = leaders[0][0]
            return leaders[0][2], leaders[0][0], "ring"
        options = []
        for root, _, root_tr in leaders:
            if root == GROUND:
                continue
            trial, tracks = Accounting(), [root_tr]
            try:
                for sat, _, tr in leaders:
                    if sat not in (root, GROUND):
                        tracks.append(self._send(trial, sat, root, nb, tr))
                    elif sat == GROUND:
                        res = self.net.from_ground(root, nb, tr.t, direct=False)
                        tracks.append(self._book(trial, res, tr, True))
            except UnreachableError:
                continue
            options.append((latest(tracks), root, "ring+isl", trial))
        trial, tracks = Accounting(), []
        try:
            for sat, _, tr in leaders:
                if sat == GROUND:
                    tracks.append(tr)
                else:
                    res = self.net.to_ground(sat, nb, tr.t, direct=False)
                    tracks.append(self._book(trial, res, tr, True))
            end = latest(tracks).add("propagation_s", self.cfg.comm.backhaul_s)
            options.append((end, GROUND, "ring+ground", trial))
        except UnreachableError:
            pass
        if not options:
            raise HorizonReached("plane sums could not be combined within the horizon")
        end, holder, label, trial = min(options, key=lambda o: o[0].t)
        _merge(acct, trial)
        self._holder = holder
        return end, holder, label

    # ------------------------------------------------------------------ a round
    def run_round(self, st: RunState) -> RunState:
        """Simulate and train round ``st.round + 1``; returns the next state."""
        r = st.round + 1
        acct, start = Accounting(), Track(st.t)
        self._t_start = st.t
        dropped: dict[str, str] = {c.sat: "no_data" for c in self.clients if c.n == 0}
        active = [c for c in self.clients if c.n > 0]
        heads: dict[str, Track] = {}
        for c in active:
            try:
                heads[c.sat] = self._receive(acct, st, c.sat, start)
            except UnreachableError:
                dropped[c.sat] = "no_broadcast"
        reuse = self.cfg.comm.reuse_features
        need = [c for c in active if c.sat in heads
                and not (reuse and c.sat in st.have_features)]
        feats = self._features(acct, need, start, dropped)
        have = sorted(set(st.have_features) | set(feats)) if reuse else []
        ready: dict[str, Track] = {}
        for c in active:
            if c.sat in dropped:
                continue
            tr = latest([heads[c.sat], feats.get(c.sat, start)])
            flops = self.cfg.train.local_epochs * c.n * self.costs.train_flops
            ready[c.sat] = self._compute(acct, c.sat, tr, flops)
        deadline = self._deadline(ready)
        late = [s for s, tr in ready.items() if tr.t > deadline]
        for sat in late:
            dropped[sat] = "deadline"
            del ready[sat]
        if not ready:
            raise HorizonReached(f"round {r}: no satellite could train ({len(dropped)} dropped)")
        if late and self.ring:  # a ring's members are only known once the deadline passed
            ready = {s: tr.wait_until(deadline) for s, tr in ready.items()}
        updates = self.trainer(r, st.head, sorted(ready, key=self.index.get))
        if self.ring:
            end, head, label = self._ring(acct, ready, updates, dropped)
            holder = self._holder
        else:
            end, head, holder = self._star(acct, ready, updates, dropped)
            label = "star"
        acc = accuracy(self.template, head, self.data.test_x, self.data.test_y)
        participants = [s for s in ready if s not in dropped]
        row = round_row(round_idx=r, scheme=self.cfg.scheme, start=start, end=end, acct=acct,
                        accuracy=acc, participants=participants, dropped=dropped,
                        aggregation=label)
        energy = {k: list(v) for k, v in st.energy.items()}
        for sat in set(acct.compute_j) | set(acct.transmit_j):
            e = energy.setdefault(sat, [0.0, 0.0])
            e[0] += acct.compute_j.get(sat, 0.0)
            e[1] += acct.transmit_j.get(sat, 0.0)
        return RunState(round=r, t=end.t, holder=holder, head=head, have_features=have,
                        rows=[*st.rows, row], energy=energy)


def _merge(acct: Accounting, other: Accounting) -> None:
    for k, v in other.bytes.items():
        acct.bytes[k] = acct.bytes.get(k, 0.0) + v
    for k, v in other.transmit_j.items():
        acct.transmit_j[k] += v
    acct.ground_j += other.ground_j
    acct.exchanged_bytes += other.exchanged_bytes
