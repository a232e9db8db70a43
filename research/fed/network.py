"""The contact plan as federated rounds see it: direct or routed transfers, ground, and faults.

Faults (station outages, ISL failures) are injected here, as a thin mask over the unchanged
:class:`~research.orbit.ContactPlan`: a transfer whose hops touch a failed node or link while it is
down is retried from the end of the outage (store-and-forward waits it out), and the visibility
queries used by the downlink scheduler leave failed stations and links out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from research.fed.config import Fault
from research.orbit import ContactPlan, Hop, TransferResult, UnreachableError
from research.orbit.isl import KIND_NAMES
from research.orbit.routing import hop_timing

GROUND = "ground"
"""Holder name of a model that sits on the (terrestrially connected) ground segment."""


class FedNetwork:
    """Fault-aware transfers over a contact plan (see module docstring)."""

    def __init__(self, plan: ContactPlan, faults: Sequence[Fault] = ()) -> None:
        self.plan = plan
        self.faults = list(faults)
        self.stations = set(plan.stations)
        for f in self.faults:
            for node in f.nodes:
                plan.index(node)  # unknown node: KeyError naming it
        self._pair = {(int(a), int(b)): (i, True) for i, (a, b) in
                      enumerate(zip(plan.link_a, plan.link_b, strict=True))}
        self._pair.update({(b, a): (i, False) for (a, b), (i, _) in list(self._pair.items())})

    @property
    def horizon_s(self) -> float:
        return self.plan.horizon_s

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

    # ------------------------------------------------------------------ transfers
    def _direct(self, src: str, dst: str, n_bytes: float, t0: float) -> TransferResult:
        key = (self.plan.index(src), self.plan.index(dst))
        if key not in self._pair:
            raise UnreachableError(f"{src} and {dst} share no link")
        link, fwd = self._pair[key]
        timing = hop_timing(self.plan, link, fwd, t0, 8.0 * n_bytes)
        if timing is None:
            raise UnreachableError(f"no contact {src} -> {dst} after t={t0:.0f} s within the "
                                   f"horizon {self.horizon_s:.0f} s")
        t_start, t_sent, t_arr, tx, delay = timing
        energy = self.plan.model_for(link, fwd).tx_power_w * tx
        kind = KIND_NAMES[int(self.plan.link_kind[link])]
        hop = Hop(src, dst, kind, t0, t_start, t_sent, t_arr, (t_sent - t0) - tx, tx, delay,
                  energy)
        return TransferResult(t_arr, [src, dst], energy, t0, float(n_bytes), hop.wait_s, tx,
                              delay, [hop])

    def transfer(self, src: str, dst: str, n_bytes: float, t0: float, *, direct: bool = False
                 ) -> TransferResult:
        """Earliest delivery avoiding faults; ``direct`` allows only the ``src``-``dst`` link.

        Raises :class:`UnreachableError` when nothing arrives within the horizon.
        """
        t = t0
        for _ in range(64):
            if t >= self.horizon_s:
                break
            res = (self._direct(src, dst, n_bytes, t) if direct
                   else self.plan.transfer(src, dst, n_bytes, t))
            end = self._blocked_until(res)
            if end is None:
                return res
            t = end
        raise UnreachableError(f"{src} -> {dst}: no fault-free delivery of {n_bytes:.0f} bytes "
                               f"after t={t0:.0f} s within the horizon {self.horizon_s:.0f} s")

    def to_ground(self, sat: str, n_bytes: float, t0: float, *, direct: bool) -> TransferResult:
        """Earliest delivery to any station (stations share a terrestrial network)."""
        return self._best([(sat, g) for g in self.plan.stations], n_bytes, t0, direct)

    def from_ground(self, sat: str, n_bytes: float, t0: float, *, direct: bool) -> TransferResult:
        """Earliest delivery from whichever station reaches ``sat`` first."""
        return self._best([(g, sat) for g in self.plan.stations], n_bytes, t0, direct)

    def _best(self, pairs: list[tuple[str, str]], n_bytes: float, t0: float, direct: bool
              ) -> TransferResult:
        best: TransferResult | None = None
        for a, b in pairs:
            try:
                res = self.transfer(a, b, n_bytes, t0, direct=direct)
            except UnreachableError:
                continue
            if best is None or res.t_arrival < best.t_arrival:
                best = res
        if best is None:
            raise UnreachableError(f"{pairs[0][0] if pairs else '?'}: no ground contact after "
                                   f"t={t0:.0f} s within the horizon {self.horizon_s:.0f} s")
        return best

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
