"""The isolation bound: how fast each scene could be answered with the network to itself.

The offline LP (:mod:`research.opt.oracle`) works on 10-minute cells, too coarse to bound scenes
answered in tens of seconds. This bound is exact at the simulator's own resolution instead, and
optimistic in one way only: it drops contention. For every capture ``c`` and option ``o``,
``latency[c, o]`` is what the simulator would give that scene if it were alone: its accelerator
free at capture, every link and antenna free, the earliest-arrival route of
:meth:`research.orbit.network.NetworkState.route` on an empty network, then the ground's compute
(and, for a head on board, the return trip and the answer, each leg also alone). Other traffic
only takes capacity away, and a later start does not arrive earlier, so any schedule's latency
for that scene with that option is at least ``latency[c, o]`` (the policy sweep checks it on
every ledger, ``isolation_violations``). One exception, below a millisecond a hop: a hop's
propagation delay is the range at the plan step in which its last bit leaves, so a transfer that
other traffic pushes past a step where the range drops can land up to that drop / c earlier
(0.65 ms on the test plan's 30 s steps); the check allows :data:`PROPAGATION_SLACK_S`.

:func:`percentile_bound` turns the matrix into a bound on a latency percentile over all scenes
(an undelivered scene counts as never answered, as the sweep's p95 does) for any assignment of
options that keeps the accuracy floor: on every scene (``capture``) or on the mean over all the
constellation's scenes (``mean``; a policy holding each satellite's mean holds this one too).
It is solved exactly: for a threshold ``t``, the scenes that must be answered by ``t`` are best
taken as those that lose the least expected accuracy by it, so feasibility is a sort, and the
least feasible ``t`` is found by bisection over the matrix's values.

What it leaves out makes it loose where links queue: at loads where scenes wait for each other it
says how much of a policy's latency is contention, not how much a better policy could remove.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from research.opt.policies import FLOOR_MODES, CaptureLike
from research.orbit.contact_plan import ContactPlan
from research.orbit.network import NetworkResources, NetworkState

__all__ = ["PROPAGATION_SLACK_S", "isolated_latencies", "percentile_bound"]

PROPAGATION_SLACK_S = 0.01
"""How much sooner than alone a booked scene may land before it counts as a violation: a few hops'
worth of the propagation delay's change over one plan step (see the module docstring)."""


def isolated_latencies(plan: ContactPlan, resources: NetworkResources,
                       captures: Sequence[CaptureLike], payload_bytes: np.ndarray,
                       compute_s: np.ndarray, ground_s: np.ndarray, *,
                       return_bytes: np.ndarray | None = None,
                       return_compute_s: np.ndarray | None = None,
                       answer_bytes: np.ndarray | None = None,
                       progress: bool = False) -> np.ndarray:
    """``[C, O]`` seconds from capture to answer for each scene alone (``inf``: not within the
    horizon). Every array is ``[C, O]``: the scene's bytes down, on-board seconds before sending,
    ground seconds, and for options with a head on board the bytes sent back up, the head's
    seconds and the answer's bytes."""
    shape = (len(captures), payload_bytes.shape[1] if payload_bytes.ndim == 2 else -1)
    for name, arr in (("payload_bytes", payload_bytes), ("compute_s", compute_s),
                      ("ground_s", ground_s), ("return_bytes", return_bytes),
                      ("return_compute_s", return_compute_s), ("answer_bytes", answer_bytes)):
        if arr is not None and (arr.ndim != 2 or arr.shape != shape):
            raise ValueError(f"{name} must be [captures, options] = {list(shape)}, got "
                             f"{list(arr.shape)}")
    zeros = np.zeros(shape)
    up = zeros if return_bytes is None else return_bytes
    head = zeros if return_compute_s is None else return_compute_s
    answer = zeros if answer_bytes is None else answer_bytes
    net = NetworkState(plan, resources)  # never booked: every query sees the empty network
    stations = list(plan.stations)
    out = np.full(shape, math.inf)
    for c, cap in enumerate(tqdm(captures, desc="isolated routes", disable=not progress)):
        for o in range(shape[1]):
            t_ready = cap.t_s + compute_s[c, o]
            if t_ready >= plan.horizon_s:
                continue
            down = net.route(cap.satellite, stations, payload_bytes[c, o], t_ready)
            if not down.delivered:
                continue
            t_ground = down.t_arrival + ground_s[c, o]
            if up[c, o] <= 0:
                out[c, o] = t_ground - cap.t_s
                continue
            if t_ground >= plan.horizon_s:
                continue
            back = net.route(stations, cap.satellite, up[c, o], t_ground)
            if not back.delivered or back.t_arrival + head[c, o] >= plan.horizon_s:
                continue
            last = net.route(cap.satellite, stations, answer[c, o], back.t_arrival + head[c, o])
            if last.delivered:
                out[c, o] = last.t_arrival - cap.t_s
    return out


def percentile_bound(latency: np.ndarray, accuracy: np.ndarray, floor: float,
                     floor_mode: str = "mean", q: float = 95.0) -> float:
    """The least ``q``-th percentile of scene latency (numpy's ``higher`` method, over all scenes,
    ``inf`` for one not answered) any assignment of options keeping ``floor`` can reach, given
    each scene's ``latency[c, o]`` alone (see the module docstring); ``inf`` if even alone too
    few scenes can be answered."""
    if floor_mode not in FLOOR_MODES:
        raise ValueError(f"floor_mode must be one of {list(FLOOR_MODES)}, got {floor_mode!r}")
    if latency.ndim != 2 or latency.shape[1] != len(accuracy):
        raise ValueError(f"latency must be [captures, options] with one column per accuracy "
                         f"({len(accuracy)}), got {list(latency.shape)}")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be a percentile in [0, 100], got {q!r}")
    n = latency.shape[0]
    if n == 0:
        return math.nan
    need = math.ceil((n - 1) * q / 100.0) + 1  # scenes at or under the percentile
    acc = np.asarray(accuracy, dtype=float)
    if floor_mode == "capture":
        allowed = acc >= floor
        if not allowed.any():
            return math.inf
        fastest = np.sort(latency[:, allowed].min(axis=1))
        return float(fastest[need - 1])
    best = float(acc.max())
    slack = n * (best - floor)  # accuracy the scenes answered by t may give up, in all
    if slack < -1e-12:
        return math.inf

    def feasible(t: float) -> bool:
        reach = np.where(latency <= t, acc[None, :], -np.inf).max(axis=1)
        loss = np.sort(best - reach[np.isfinite(reach)])
        return len(loss) >= need and float(loss[:need].sum()) <= slack + 1e-9

    values = np.unique(latency[np.isfinite(latency)])
    if not len(values) or not feasible(float(values[-1])):
        return math.inf
    lo, hi = 0, len(values) - 1  # values[hi] is feasible
    while lo < hi:
        mid = (lo + hi) // 2
        if feasible(float(values[mid])):
            hi = mid
        else:
            lo = mid + 1
    return float(values[hi])
