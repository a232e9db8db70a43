"""Ground-centralised baseline: every satellite downlinks its images, the ground trains.

The reference a split has to beat (issue 20): no model crosses a link and no round waits for a
satellite; what it pays is the raw data on the downlinks (one byte per pixel and band: 12,288 B
for a 64x64 RGB tile, against 49,152 B of float32 tokens at cut 0) and the ground's compute.

* **Collection.** At the run's start every satellite with data sends its images through the same
  scheduler, with the same options, as the collaborative scheme's embeddings
  (:func:`research.fed.schedule.drain_to_ground`: max-flow or greedy, intra-plane sharing).
* **Training.** The ground encodes each image once on arrival (the frozen encoder, patch
  embedding included) and trains the head on everything it holds as the data comes in: round
  ``r`` of ``R`` starts once ``r/R`` of the satellites' data is down and runs ``local_epochs`` of
  the same SGD (optimiser, batch size, learning rate) over all of it, from the previous head.
  Round ``R`` is centralised training on the whole training set.
* **Ledger.** The usual row per round: ``participants`` are the satellites whose images the
  ground trains on, ``satellites_new_data`` those whose data completed in the round, ``dropped``
  those the plan never joins to a station. Time spent waiting for data is ``queue_s``; ground
  encoding and training are ``ground_compute_s``. Each satellite's downlink bytes are booked in
  the round its data completes, with its share of the collection's ISL bytes and transmit
  energy (the totals are exact; the split over rounds is this attribution).

Privacy and secure aggregation concern federated updates and are refused here: the ground holds
the raw images. The scheme's only topology is ``star`` (everything meets at the ground).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from devices import get_device
from research.fed.clients import (
    Dataset,
    SatelliteClient,
    client_seed,
    held_out_accuracies,
    local_update,
)
from research.fed.config import FedConfig
from research.fed.cost import Costs
from research.fed.ledger import Accounting, Track, round_row
from research.fed.network import GROUND, FedNetwork
from research.fed.rounds import HorizonReached, RunState
from research.fed.schedule import drain_to_ground

__all__ = ["CentralisedSimulator"]


class CentralisedSimulator:
    """Rounds of the ground-centralised baseline (the :class:`RoundSimulator` interface)."""

    def __init__(self, cfg: FedConfig, net: FedNetwork, clients: list[SatelliteClient],
                 costs: Costs, template: nn.Module, data: Dataset, trainer: object = None,
                 secure_trainer: object = None) -> None:
        if trainer is not None or secure_trainer is not None:
            raise ValueError("the centralised baseline trains on the ground in this process; "
                             "it takes no federated trainer (Flower engine)")
        if cfg.privacy.level != "none":
            raise ValueError("privacy: the centralised baseline downlinks the raw images, so "
                             "differential privacy of federated updates does not apply; set "
                             "privacy.level: none")
        if cfg.comm.round_deadline_s is not None:
            raise ValueError("comm.round_deadline_s: the centralised baseline has no rounds that "
                             "wait for satellites; set it to null")
        if cfg.secagg.enabled:
            raise ValueError("secagg: the centralised baseline sends no updates to aggregate; "
                             "set secagg.enabled: false")
        if costs.image_bytes <= 0:
            raise ValueError("costs.image_bytes must be > 0 (bytes of one raw image)")
        self.cfg, self.net, self.clients, self.costs = cfg, net, clients, costs
        self.template, self.data = template, data
        self.ground_hw = get_device(cfg.profiles.ground).require_throughput()
        self.index = {c.sat: i for i, c in enumerate(clients)}
        self._arrivals: list[tuple[float, str]] | None = None
        self._collection: Accounting | None = None
        # A satellite the drain can never move down (no station in reach of it, or of its plane
        # with sharing) cannot send: a known failure, as for the federated schemes; one still
        # sending at the plan's end stops the run.
        sharing = cfg.comm.intra_orbit_sharing
        self.unreachable = {c.sat: "no_contact" for c in clients
                            if c.n > 0 and not net.drain_reaches(c.sat, sharing)}
        self.senders = [c.sat for c in clients if c.n > 0 and c.sat not in self.unreachable]
        if not self.senders:
            raise ValueError("no satellite with data ever reaches a station in this plan: the "
                             "centralised baseline has nothing to train on")

    # ------------------------------------------------------------------ collection
    def arrivals(self) -> list[tuple[float, str]]:
        """``(time, satellite)`` at which each satellite's last image is on the ground, in
        order; satellites still sending at the plan's end are absent."""
        if self._arrivals is None:
            acct = Accounting()
            down = drain_to_ground(self.net, dict.fromkeys(self.senders, Track(0.0)),
                                   {s: self.clients[self.index[s]].n * self.costs.image_bytes
                                    for s in self.senders},
                                   sharing=self.cfg.comm.intra_orbit_sharing,
                                   maxflow=self.cfg.comm.maxflow, acct=acct)
            self._arrivals = sorted((tr.t, sat) for sat, tr in down.items())
            self._collection = acct
        return self._arrivals

    def _booked(self, sats: list[str]) -> Accounting:
        """The collection's bytes and energy attributed to ``sats`` (see the module docstring)."""
        images = sum(self.clients[self.index[s]].n for s in sats)
        share = images / sum(self.clients[self.index[s]].n for s in self.senders)
        whole, acct = self._collection, Accounting()
        acct.bytes["downlink"] = images * self.costs.image_bytes
        for link in ("isl_intra", "isl_inter"):
            acct.bytes[link] = whole.bytes[link] * share
        for sat, joules in sorted(whole.transmit_j.items()):
            acct.transmit_j[sat] += joules * share
        return acct

    # ------------------------------------------------------------------ a round
    def run_round(self, st: RunState) -> RunState:
        """Train round ``st.round + 1`` on the data down by then; the next state."""
        r, rounds = st.round + 1, self.cfg.train.rounds
        arrivals = self.arrivals()
        senders = len(self.senders)
        need = math.ceil(r * senders / rounds)
        if need > len(arrivals):
            raise HorizonReached(f"round {r}: the data of {need} of {senders} satellites must be "
                                 f"on the ground; {len(arrivals)} arrive within the plan")
        before = math.ceil((r - 1) * senders / rounds)
        new = [sat for _, sat in arrivals[before:need]]
        held = [sat for _, sat in arrivals[:need]]
        start = Track(st.t)
        tr = start.wait_until(arrivals[need - 1][0])
        encode = sum(self.clients[self.index[s]].n for s in new) * (
            self.costs.embed_flops + self.costs.encode_flops)
        idx = torch.from_numpy(_indices(self.clients, self.index, held))
        train = self.cfg.train.local_epochs * len(idx) * self.costs.train_flops
        tr = tr.add("ground_compute_s", self.ground_hw.seconds(encode + train))
        acct = self._booked(new)
        acct.ground_j += self.ground_hw.energy_j(encode + train)
        head = local_update(self.template, st.head, self.data.train_x[idx],
                            self.data.train_y[idx], self.cfg.train,
                            client_seed(self.cfg.train.seed, r, 0))
        held_out = held_out_accuracies(self.template, head, self.data)
        row = round_row(round_idx=r, scheme=self.cfg.scheme, start=start, end=tr, acct=acct,
                        accuracy=held_out.pop("accuracy"), participants=held,
                        dropped=self.unreachable, aggregation="ground")
        row.update(held_out)
        row["satellites_new_data"] = len(new)
        energy = {k: list(v) for k, v in st.energy.items()}
        for sat in sorted(acct.transmit_j):
            energy.setdefault(sat, [0.0, 0.0])[1] += acct.transmit_j[sat]
        return RunState(round=r, t=tr.t, holder=GROUND, head=head, rows=[*st.rows, row],
                        energy=energy)


def _indices(clients: list[SatelliteClient], index: dict[str, int], sats: list[str]
             ) -> np.ndarray:
    """Training-set indices of ``sats``'s images, in client order (deterministic)."""
    return np.concatenate([clients[index[s]].indices for s in sorted(sats, key=index.get)])
