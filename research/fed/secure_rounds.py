"""Secure aggregation on the contact plan: SecAgg's stages booked as transfers of a round.

With ``secagg.enabled`` every round runs the protocol of :mod:`research.fed.secagg` (Bonawitz
et al. 2017, as Flower's SecAgg+ runs it with every satellite a neighbour of every other), and
each of its messages is a transfer on the run's network, booked like any other:

1. **keys up**: at the round's start every satellite with data sends its two public keys (64 B)
   to the *coordinator*, the ground segment that runs the round (for the star and the ring);
2. **keys down**: the coordinator sends each satellite whose keys arrived (``U1``) the others'
   keys; the threshold ``t`` is fixed now, from ``|U1|``;
3. **shares up**: a satellite sends one encrypted box of Shamir shares per other member of
   ``U1`` as soon as it has the keys;
4. **shares down**: the coordinator forwards each member of ``U2`` (whose boxes arrived) the
   boxes addressed to it; the satellite is *armed* when they arrive. ``|U2| < t`` aborts the
   round;
5. **masked input**: an armed satellite that trained sends its masked update, ``bits / 8`` bytes
   per value plus the weight, instead of 4 (the topology's upload or ring chunks; a plane's ring
   starts once all its members are armed or out);
6. **unmask**: the node that ends with the masked sum (the ground in a star; the ring's root)
   sends each survivor (``U3``) the list of who survived, and each returns its shares; the head
   exists when ``t`` replies are in (``|U3| < t``: the round cannot be unmasked).

The coordinator ends a gathering stage (1 and 3) when every message is in, or at its cut-off:
``secagg.stage_timeout_s`` after the stage opened (Flower's ``timeout``) or the round's
deadline, whichever is first; it only knows that a message is missing at the cut-off. Members it
cut off, and members armed after the deadline, are out (``secagg_setup``, or ``deadline`` when
the round's deadline cut them off, so the round ends no earlier than its deadline).

Stages 1 to 4 need neither the head nor training, so they run alongside the broadcast and the
local epochs, but they use the same links, and a satellite armed after it trained waits; stage 6
always adds its round trip. A star's satellites reach the coordinator over their own ground
links (``direct``), a ring's over the whole network. An armed member that drops later is handled
by the protocol (its masks are rebuilt from shares). A round that is aborted or cannot be
unmasked keeps the previous head (``secagg_failed``).

The numerics are :func:`research.fed.secagg.secure_weighted_mean` over the real masked vectors
(the in-process engine) or Flower's SecAgg+ workflow (the Flower engine).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from research.fed.aggregate import WIRE_BYTES
from research.fed.config import SecAggConfig
from research.fed.ledger import Track, latest
from research.fed.network import GROUND
from research.fed.secagg import SecAggCost
from research.orbit import TransferResult

if TYPE_CHECKING:
    from research.fed.rounds import _Round

__all__ = ["SETUP_DROP", "SecAggStages", "threshold_for"]

SETUP_DROP = "secagg_setup"
"""Ledger reason of a satellite whose keys or shares did not reach the coordinator in time."""


def threshold_for(n: int, fraction: float) -> int:
    """``t`` of a cohort of ``n``: ``floor(fraction * n) + 1``, at least 2 and at most ``n``."""
    return min(n, max(2, math.floor(fraction * n) + 1))


class SecAggStages:
    """SecAgg's messages in one round (see the module docstring), booked on ``rnd``'s queue.

    ``armed``: member -> the track at which it holds its shares; ``cohort``: ``U2`` once the
    shares stage is over (None before); ``t``: the threshold, fixed at the keys stage;
    ``aborted``: the track at which the coordinator gave the round up (None: it did not);
    ``bytes``: the control messages' bytes booked (keys, shares, unmasking; the masked inputs are
    model bytes, carried by the topology).
    """

    def __init__(self, rnd: _Round, cfg: SecAggConfig) -> None:
        self.rnd, self.cfg = rnd, cfg
        self.direct = rnd.topology.direct
        self.armed: dict[str, Track] = {}
        self.out: set[str] = set()
        self.cohort: list[str] | None = None
        self.t = 2
        self.aborted: Track | None = None
        self.bytes = 0.0
        self._waiters: list[tuple[list[str], Callable[[], None]]] = []
        self.dim = rnd.sim.update_bytes // WIRE_BYTES + 1  # the values and the weight

    # ------------------------------------------------------------------ sizes
    def cost(self, n: int) -> SecAggCost:
        """Message sizes for a cohort of ``n`` (share boxes do not depend on ``t``)."""
        n = max(n, 2)
        return SecAggCost.for_round(n, self.dim, self.cfg.bits, min(self.t, n))

    @property
    def element_bytes(self) -> float:
        """Bytes per value of a masked vector."""
        return self.cfg.bits / 8

    def masked_bytes(self) -> float:
        """A masked update (what a star upload carries)."""
        return self.dim * self.element_bytes

    # ------------------------------------------------------------------ stages 1 to 4
    def start(self, members: list[str]) -> None:
        """Stage 1 at the round's start: ``members`` send their public keys."""
        keys = _Gather(self, members, self.cost(len(members)).keys_up, self._keys_in,
                       opened=self.rnd.start.t)
        for sat in members:
            keys.send(sat, self.rnd.start)

    def _book(self, res: TransferResult, tr: Track) -> Track:
        self.bytes += res.n_bytes
        return self.rnd.sim.book(self.rnd.acct, res, tr, model=False)

    def _keys_in(self, at: Track, got: dict[str, Track]) -> None:
        """Stage 2 from ``at``: the keys go down to ``U1``; each member sends its shares up
        (stage 3) as soon as they arrive."""
        rnd = self.rnd
        u1 = [s for s in rnd.active if s in got]
        self._out(set(rnd.active) - set(u1), SETUP_DROP)
        self.t = threshold_for(len(u1), self.cfg.threshold)
        if len(u1) < 2:
            self._abort(at)
            return
        cost = self.cost(len(u1))
        shares = _Gather(self, u1, cost.shares_up, self._shares_in, opened=at.t)

        def keys_down(sat: str) -> None:
            def resolved(res: TransferResult) -> None:
                if not res.delivered:
                    shares.skip(sat)
                    return
                tr = self._book(res, at)
                rnd.q.at(tr.t, lambda: shares.send(sat, tr))

            rnd.q.request(at.t, GROUND, sat, cost.keys_down, direct=self.direct, then=resolved)

        for sat in u1:
            keys_down(sat)

    def _shares_in(self, at: Track, got: dict[str, Track]) -> None:
        """Stage 4 from ``at``: the boxes go down to ``U2``; each member is armed when its boxes
        arrive (by the deadline)."""
        rnd = self.rnd
        u2 = [s for s in rnd.active if s in got]
        self._out(set(rnd.active) - set(u2), SETUP_DROP)
        self.cohort = u2
        if len(u2) < self.t:  # the shares could not rebuild anyone's masks
            self._abort(at)
            return
        cost = self.cost(len(u2))

        def shares_down(sat: str) -> None:
            def resolved(res: TransferResult) -> None:
                tr = self._book(res, at) if res.delivered else None
                if tr is None:
                    self._out({sat}, SETUP_DROP)
                elif tr.t > rnd.deadline:
                    self._out({sat}, "deadline")
                else:
                    rnd.q.at(tr.t, lambda: self._arm(sat, tr))

            rnd.q.request(at.t, GROUND, sat, cost.shares_down, direct=self.direct, then=resolved)

        for sat in u2:
            shares_down(sat)

    def _abort(self, at: Track) -> None:
        """Too few members to go on: nobody is armed, the round keeps the previous head."""
        self.aborted = at
        self._out(set(self.rnd.active) - self.out, SETUP_DROP)

    def _arm(self, sat: str, tr: Track) -> None:
        self.armed[sat] = tr
        self._resolved()

    def _out(self, sats: set[str], reason: str) -> None:
        """``sats`` cannot mask an update this round: dropped (unless already, for a reason)."""
        for sat in sats:
            self.rnd.dropped.setdefault(sat, reason)
            self.out.add(sat)
        self._resolved()

    def _settled(self, sats: list[str]) -> bool:
        return all(s in self.armed or s in self.out for s in sats)

    def _resolved(self) -> None:
        """Someone is armed or out: whoever waited for them (and nobody else) goes on."""
        waiting, self._waiters = self._waiters, []
        for sats, go in waiting:
            if self._settled(sats):
                go()
            else:
                self._waiters.append((sats, go))

    # ------------------------------------------------------------------ gating stage 5
    def when_armed(self, sats: list[str], go: Callable[[], None]) -> None:
        """Call ``go()`` once each of ``sats`` is armed or out (now, if they are; a satellite
        out of the cohort is already in ``rnd.dropped``)."""
        if self._settled(sats):
            go()
        else:
            self._waiters.append((list(sats), go))

    def armed_track(self, sat: str, tr: Track) -> Track | None:
        """``tr`` waiting for ``sat``'s shares; None when ``sat`` is out of the cohort."""
        armed = self.armed.get(sat)
        return None if armed is None else tr.wait_until(armed.t)

    def columns(self, error: float | None) -> dict:
        """The round's ledger columns (``error``: the secure head against the plain one)."""
        return {"secagg_cohort": len(self.cohort or []), "secagg_threshold": self.t,
                "bytes_secagg_control": self.bytes, "secagg_max_abs_error": error}

    # ------------------------------------------------------------------ stage 6
    def unmask(self, end: Track, holder: str, survivors: list[str]) -> tuple[Track, bool]:
        """Stage 6 from ``end``, when ``holder`` has the masked sum: ``(track, True)`` once
        ``t`` survivors' shares are in, or ``(track, False)`` once it is known that fewer than
        ``t`` can be (the round cannot be unmasked)."""
        rnd = self.rnd
        u2 = self.cohort or []
        t_needed = self.t
        if len(survivors) < t_needed:
            return end, False
        cost = self.cost(len(u2))
        direct = self.direct and holder == GROUND
        replies: list[Track] = []
        list_bytes = 4 * len(u2)  # who survived and who dropped
        rnd.q.rewind(end.t)

        def needed(t: float) -> bool:  # a reply sent once t replies are in is not needed
            return sum(tr.t <= t for tr in replies) < t_needed

        def ask(sat: str) -> None:
            if sat == holder:
                replies.append(end)
                return

            def listed(res: TransferResult) -> None:
                if not res.delivered:
                    return
                got = self._book(res, end)

                def replied(res: TransferResult) -> None:
                    if res.delivered:
                        replies.append(self._book(res, got))

                rnd.q.request(got.t, sat, holder, cost.unmask_up, direct=direct, then=replied,
                              live=needed)

            rnd.q.request(end.t, holder, sat, list_bytes, direct=direct, then=listed)

        for sat in survivors:
            ask(sat)
        rnd.q.run()
        if len(replies) < t_needed:  # known once the last reply that could come was sent
            return end.wait_until(rnd.q.sent), False
        return sorted(replies, key=lambda tr: tr.t)[t_needed - 1].wait_until(rnd.q.sent), True


class _Gather:
    """One message from each of ``sats`` to the coordinator (a gathering stage, opened at
    ``opened``); ``done(track, arrived)`` once every one is in, or at the cut-off (see the module
    docstring): ``track`` is the coordinator's when it goes on, ``arrived`` the members whose
    message came in time. Members cut off are out."""

    def __init__(self, stages: SecAggStages, sats: list[str], n_bytes: float,
                 done: Callable[[Track, dict[str, Track]], None], opened: float) -> None:
        self.stages, self.n_bytes, self.done = stages, n_bytes, done
        self.pending, self.got, self.late = set(sats), {}, False
        self.finished = False
        rnd = stages.rnd
        timeout = stages.cfg.stage_timeout_s
        self.cutoff = min(rnd.deadline, math.inf if timeout is None else opened + timeout)
        self.reason = "deadline" if self.cutoff == rnd.deadline else SETUP_DROP
        if not sats:
            self._finish()
        elif math.isfinite(self.cutoff):
            rnd.q.at(max(self.cutoff, rnd.q.now), self._cut)

    def send(self, sat: str, tr: Track) -> None:
        """``sat`` sends its message from ``tr`` (not earlier than the queue's time)."""
        st = self.stages

        def resolved(res: TransferResult) -> None:
            arrival = st._book(res, tr) if res.delivered else None
            if self.finished:
                return
            if arrival is not None and arrival.t <= self.cutoff:
                self.got[sat] = arrival
            else:
                self.late = self.late or arrival is not None
                st._out({sat}, self.reason if arrival is not None else SETUP_DROP)
            self.skip(sat)

        st.rnd.q.request(tr.t, sat, GROUND, self.n_bytes, direct=st.direct, then=resolved,
                         live=lambda t: t <= self.cutoff and not self.finished)

    def skip(self, sat: str) -> None:
        """``sat``'s message is resolved (arrived, or never will)."""
        self.pending.discard(sat)
        if not self.pending:
            self._finish()

    def _cut(self) -> None:
        """The cut-off: whoever has not sent in time is out; the coordinator goes on."""
        if self.finished:
            return
        self.stages._out(set(self.pending), self.reason)
        self.pending.clear()
        self.late = True
        self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        rnd = self.stages.rnd
        at = latest([rnd.start, *self.got.values()])
        if self.late:  # a missing message is only known at the cut-off
            at = at.wait_until(self.cutoff)
        at = at.wait_until(rnd.q.now)
        rnd.q.at(at.t, lambda: self.done(at, self.got))
