"""What a satellite can predict about its own downlink from the contact plan it carries.

A satellite knows its upcoming ground contacts (the contact plan is uploaded to it, as in DTN
contact graph routing) and its own transmit queue; it does not see other satellites' bookings.
:class:`DownlinkOutlook` turns the plan into, per satellite, the cumulative bits it could send
down and the seconds its transmitter would be on, on the plan's time grid, taking in each grid
cell the best station in view (one transmitter points at one station). Answering "if I start
sending ``bits`` at ``t``, when is the last bit down and how long does the transmitter run?" is
then two binary searches: cheap enough for an on-board controller (see ``scripts/bench_policy.py``).

A satellite may also count the contacts of satellites a few ISL hops away (:meth:`relays`):
how many hops is a question of the plan, answered by :meth:`DownlinkOutlook.reach`, the fewest
hops within which every satellite almost always has some relay in view of a station. Too few,
and a controller whose relays are all out of view expects minutes of waiting for every option
(and picks on bytes alone) while the network's router gets the scene down in seconds over more
hops.

This is an estimate: a station's antenna may be taken by another satellite, ISL relays may
deliver sooner (or later: the ISL hops are taken as instantaneous and free), and the rate is the
mean over a grid cell. The simulation
(:class:`research.orbit.network.NetworkState`) decides what really happens.
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np

from research.orbit.contact_plan import ContactPlan
from research.orbit.isl import KIND_GROUND

__all__ = ["REACH_COVERAGE", "DownlinkOutlook", "GroundCells", "ground_cells"]

#: :meth:`DownlinkOutlook.reach`'s default: the share of the time in which the constellation has a
#: satellite in view of a station that a satellite's relays must cover.
REACH_COVERAGE = 0.99


_CELLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_OUTLOOKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class GroundCells:
    """Downlink capacity on the plan's grid.

    ``bits[s, g, k]`` is what satellite ``s`` could send to station ``g`` in grid cell ``k`` (the
    rate profile integrated over the part of the cell the contact is up, a contact's first and
    last segments split at the cell edges), ``active_s`` the seconds of it with a non-zero rate,
    ``tx_power_w[s]`` the satellite's downlink transmitter power and ``peak_rate_bps`` the
    highest rate any ground contact reaches.
    """

    edges: np.ndarray
    bits: np.ndarray
    active_s: np.ndarray
    tx_power_w: np.ndarray
    peak_rate_bps: float


def ground_cells(plan: ContactPlan) -> GroundCells:
    """The plan's :class:`GroundCells`, computed once per plan (the plan is immutable)."""
    if plan not in _CELLS:
        _CELLS[plan] = _ground_cells(plan)
    return _CELLS[plan]


def _ground_cells(plan: ContactPlan) -> GroundCells:
    step = float(plan.step_s)
    n = max(1, math.ceil(plan.horizon_s / step - 1e-9))
    edges = np.minimum(np.arange(n + 1) * step, plan.horizon_s)
    n_sat = len(plan.satellites)
    bits = np.zeros((n_sat, len(plan.stations), n))
    active = np.zeros_like(bits)
    power = np.zeros(n_sat)
    peak = 0.0
    for i in range(n_sat):
        for w in plan._windows_of_node(i):
            link = int(plan.win_link[w])
            if int(plan.link_kind[link]) != KIND_GROUND:
                continue
            forward = int(plan.link_a[link]) == i
            g = (int(plan.link_b[link]) if forward else int(plan.link_a[link])) - n_sat
            bounds, rates, cum, act = plan.window_profile(int(w), forward)
            # cumulative bits and active seconds at the grid edges the window crosses
            first = min(int(bounds[0] // step), n - 1)
            last = min(int(bounds[-1] // step), n - 1)
            at = np.clip(np.arange(first, last + 2) * step, bounds[0], bounds[-1])
            bits[i, g, first:last + 1] += np.diff(np.interp(at, bounds, cum))
            active[i, g, first:last + 1] += np.diff(np.interp(at, bounds, act))
            power[i] = max(power[i], float(plan.model_for(link, forward).tx_power_w))
            peak = max(peak, float(rates.max(initial=0.0)))
    return GroundCells(edges, bits, active, power, peak)


class DownlinkOutlook:
    """Per-satellite cumulative downlink capacity on the plan's grid (see module docstring).

    Attributes:
        tx_power_w: Per satellite, the downlink transmitter's power (W), charged while it sends.
    """

    def __init__(self, plan: ContactPlan) -> None:
        cells = ground_cells(plan)
        bits, active, power = cells.bits, cells.active_s, cells.tx_power_w
        self._edges = cells.edges.tolist()
        self.satellites = list(plan.satellites)
        self.plan = plan
        best = bits.argmax(axis=1)  # one transmitter: the best station in view in each cell
        best_bits = np.take_along_axis(bits, best[:, None, :], axis=1)[:, 0, :]
        best_active = np.take_along_axis(active, best[:, None, :], axis=1)[:, 0, :]
        zero = np.zeros((len(self.satellites), 1))
        cum_bits = np.concatenate([zero, np.cumsum(best_bits, axis=1)], axis=1)
        cum_active = np.concatenate([zero, np.cumsum(best_active, axis=1)], axis=1)
        self._cum_bits = dict(zip(self.satellites, cum_bits.tolist(), strict=True))
        self._cum_active = dict(zip(self.satellites, cum_active.tolist(), strict=True))
        self.tx_power_w = dict(zip(self.satellites, power.tolist(), strict=True))
        self._in_view = bits.sum(axis=1) > 0  # [satellite, cell]: some station can receive
        self._reach: dict[float, int] = {}
        self._sent_by: dict[str, tuple[float, float]] = {}  # satellite -> (t, bits by t)

    @classmethod
    def for_plan(cls, plan: ContactPlan) -> DownlinkOutlook:
        """The outlook of ``plan``, built once and shared (it holds no state of a run)."""
        if plan not in _OUTLOOKS:
            _OUTLOOKS[plan] = cls(plan)
        return _OUTLOOKS[plan]

    def _at(self, cum: list[float], t: float) -> float:
        """Cumulative value at time ``t`` (linear within a cell)."""
        e = self._edges
        if t <= 0:
            return cum[0]
        if t >= e[-1]:
            return cum[-1]
        k = bisect_right(e, t) - 1
        span = e[k + 1] - e[k]
        return cum[k] + (cum[k + 1] - cum[k]) * ((t - e[k]) / span if span > 0 else 0.0)

    def finish(self, satellite: str, t_start: float, n_bytes: float) -> tuple[float, float]:
        """``(t_last_bit_sent, transmit_s)`` for ``n_bytes`` starting at ``t_start`` with the
        transmitter free; ``(inf, inf)`` if the plan has too few contacts before the horizon."""
        if n_bytes <= 0:
            return t_start, 0.0
        t = self._last_bit(satellite, t_start, n_bytes)
        if not math.isfinite(t):
            return math.inf, math.inf
        act = self._cum_active[satellite]
        return t, self._at(act, t) - self._at(act, t_start)

    def _last_bit(self, satellite: str, t_start: float, n_bytes: float) -> float:
        """:meth:`finish`'s time alone (``inf`` past the plan's capacity), for ``n_bytes > 0``."""
        cum = self._cum_bits[satellite]
        sent = self._sent_by.get(satellite)  # options that start together share this lookup
        if sent is None or sent[0] != t_start:
            sent = self._sent_by[satellite] = (t_start, self._at(cum, t_start))
        target = sent[1] + 8.0 * n_bytes
        if target > cum[-1]:
            return math.inf
        j = bisect_left(cum, target)  # first edge by which ``target`` bits are sent
        e = self._edges
        return e[j - 1] + (target - cum[j - 1]) / (cum[j] - cum[j - 1]) * (e[j] - e[j - 1])

    def relays(self, satellite: str, hops: int) -> list[str]:
        """The satellite, then every satellite within ``hops`` ISL hops of it (ISL links of the
        plan at any time) in plan order: where its bytes could leave for the ground."""
        plan = self.plan
        n_sat = len(self.satellites)
        seen = {plan.index(satellite)}
        frontier = [plan.index(satellite)]
        for _ in range(hops):
            nxt = []
            for i in frontier:
                for link, _, j in plan.adjacency(i):
                    if j < n_sat and j not in seen and int(plan.link_kind[link]) != KIND_GROUND:
                        seen.add(j)
                        nxt.append(j)
            frontier = nxt
        ordered = [plan.index(satellite)] + sorted(seen - {plan.index(satellite)})
        return [self.satellites[i] for i in ordered]

    def coverage(self, satellite: str, hops: int | None) -> float:
        """Share of the plan's grid cells in which the satellite or one within ``hops`` ISL hops
        (``None``: any it can reach) has a station in view."""
        reach = len(self.satellites) if hops is None else hops
        rows = [self.plan.index(r) for r in self.relays(satellite, reach)]
        return float(self._in_view[rows].any(axis=0).mean())

    def reach(self, coverage: float = REACH_COVERAGE) -> int:
        """The fewest ISL hops within which every satellite's relays have a station in view in at
        least ``coverage`` of the cells where any satellite it can reach has one: how far an
        on-board controller must count contacts not to mistake a gap in its neighbourhood's
        contacts for a gap in the constellation's. 0 without ISLs."""
        if not 0.0 < coverage <= 1.0:
            raise ValueError(f"coverage must be in (0, 1], got {coverage!r}")
        if coverage not in self._reach:
            self._reach[coverage] = self._fewest_hops(coverage)
        return self._reach[coverage]

    def _fewest_hops(self, coverage: float) -> int:
        full = {s: self.coverage(s, None) for s in self.satellites}
        for hops in range(len(self.satellites)):
            if all(self.coverage(s, hops) >= coverage * full[s] - 1e-12 for s in self.satellites):
                return hops
        return len(self.satellites)

    def finish_via(self, relays: list[str], t_start: float, n_bytes: float
                   ) -> tuple[float, float]:
        """:meth:`finish` through whichever of ``relays`` gets the bytes down first (the ISL hops
        taken as instantaneous: optical ISLs are much faster than the X-band downlink)."""
        if n_bytes <= 0 or len(relays) == 1:
            return min(self.finish(r, t_start, n_bytes) for r in relays)
        times = [self._last_bit(r, t_start, n_bytes) for r in relays]
        first = min(times)  # the transmitter time only for the relays that get there first
        return min(self.finish(r, t_start, n_bytes)
                   for r, t in zip(relays, times, strict=True) if t == first)

    def capacity_bits(self, satellite: str, t0: float, t1: float) -> float:
        """Bits the satellite could send down in ``[t0, t1]`` (best station in each cell)."""
        cum = self._cum_bits[satellite]
        return max(0.0, self._at(cum, t1) - self._at(cum, t0))
