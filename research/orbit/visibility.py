"""Satellite-to-ground visibility on a time grid, with pass edges refined to a tolerance.

Per chunk of times, a coarse pass at block centres about a minute apart compares each
satellite's direction with each station's (one small float32 matrix product, done in TEME by
rotating the stations rather than the satellites) against the largest central angle at which the
satellite could be above the mask, widened by how far it can move within the block. The exact
elevation test (ITRS, WGS84 geodetic up) then runs only on the steps of the few per cent of
blocks that remain. A pass edge lies between two grid steps; it is refined by bisection on the
cubic Hermite interpolant of the ITRS position and velocity at those steps (sub-millimetre at
10 s steps), so no re-propagation is needed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from research.constants import OMEGA_EARTH_RAD_S
from research.orbit.propagate import EarthRotation, teme_to_itrs_velocity
from research.orbit.stations import GroundStation, station_frames


@dataclass
class GroundChunk:
    """Visible samples and refined pass edges found in one chunk.

    Samples are sorted by (pair, step) where ``pair = sat * n_stations + station``; edge keys are
    ``pair * n_steps + step`` with the first visible step (rise) or first invisible step (set).
    """

    pair: np.ndarray  # int32
    step: np.ndarray  # int32, global
    range_km: np.ndarray  # float32
    rise_key: np.ndarray  # int64
    rise_time_s: np.ndarray
    set_key: np.ndarray  # int64
    set_time_s: np.ndarray


class GroundGeometry:
    """Station positions, up vectors and masks, precomputed once per plan."""

    def __init__(self, stations: Sequence[GroundStation]):
        self.stations = list(stations)
        self.pos, self.up = station_frames(self.stations)  # (S, 3) km
        self.g_norm = np.linalg.norm(self.pos, axis=1)
        self.g_hat = self.pos / self.g_norm[:, None]
        self.sin_m = np.sin(np.radians([s.min_elevation_deg for s in self.stations]))
        self.mask_rad = np.radians([s.min_elevation_deg for s in self.stations])

    def __len__(self) -> int:
        return len(self.stations)

    def f_elev(self, p_itrs: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``d.up - |d| sin(mask)``: >= 0 exactly when the elevation is at or above the mask."""
        d = p_itrs - self.pos[j]
        return np.einsum("ek,ek->e", d, self.up[j]) - np.linalg.norm(d, axis=-1) * self.sin_m[j]


def _hermite(p0, v0, p1, v1, s, h):
    s = s[:, None]
    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * h * v0
            + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * h * v1)


def refine_crossings(geo: GroundGeometry, p0, v0, p1, v1, j, step_s: float, rising: np.ndarray,
                     tol_s: float) -> np.ndarray:
    """Fraction ``s`` in [0, 1] of the step where the elevation crosses the mask.

    ``rising`` marks brackets that go from invisible (s=0) to visible (s=1). Bisection runs until
    the bracket is shorter than ``tol_s``; the midpoint is returned.
    """
    lo = np.zeros(len(j))
    hi = np.ones(len(j))
    n_iter = max(1, math.ceil(math.log2(max(step_s / tol_s, 1.0))))
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        vis = geo.f_elev(_hermite(p0, v0, p1, v1, mid, step_s), j) >= 0
        go_hi = vis == rising  # crossing lies in [lo, mid]
        hi = np.where(go_hi, mid, hi)
        lo = np.where(go_hi, lo, mid)
    return 0.5 * (lo + hi)


@dataclass
class SatelliteBounds:
    """Per-satellite apogee radius (km) and top angular rate (rad/s) from the mean elements."""

    r_apogee_km: np.ndarray
    omega_max: np.ndarray

    @classmethod
    def from_satrecs(cls, satrecs) -> SatelliteBounds:
        a = np.array([s.a * s.radiusearthkm for s in satrecs])
        e = np.array([s.ecco for s in satrecs])
        mu = np.array([s.mu for s in satrecs])
        r_p = a * (1 - e)
        h = np.sqrt(mu * a * (1 - e * e))
        # SGP4's short-period terms move a LEO satellite by ~10 km: pad both bounds.
        return cls(a * (1 + e) + 50.0, 1.05 * h / r_p**2 + OMEGA_EARTH_RAD_S)


def coarse_factor(step_s: float) -> int:
    """Steps per coarse block: about one minute of orbit (a few degrees of motion)."""
    return max(1, int(round(60.0 / step_s)))


def ground_chunk(geo: GroundGeometry, r_teme: np.ndarray, v_teme: np.ndarray,
                 rot: EarthRotation, steps: np.ndarray, first_is_overlap: bool, n_steps: int,
                 step_s: float, tol_s: float, bounds: SatelliteBounds) -> GroundChunk:
    """Visibility of every satellite from every station over one chunk of steps.

    A coarse pass at block centres (``coarse_factor`` steps apart) keeps the (satellite,
    station, block) triples whose central angle could be within the footprint, widened by the
    satellite's top angular rate times the block half-width; the exact elevation test runs on
    the steps of those blocks only.

    Args:
        geo: station geometry.
        r_teme, v_teme: ``(N, Tc, 3)`` TEME positions (km) and velocities (km/s).
        rot: Earth rotation at the chunk's times.
        steps: global step index of each chunk time (consecutive).
        first_is_overlap: the first time repeats the previous chunk's last one (used only to
            detect edges; its samples were already emitted).
        n_steps: grid length (for keys).
        step_s: grid spacing.
        tol_s: refinement tolerance for pass edges.
        bounds: per-satellite radius / angular-rate bounds.
    """
    n_sat, tc, _ = r_teme.shape
    n_st = len(geo)
    m = min(coarse_factor(step_s), tc)
    n_blocks = -(-tc // m)
    starts = np.arange(n_blocks) * m
    centres = np.minimum(starts + m // 2, tc - 1)
    ends = np.minimum(starts + m, tc) - 1
    half = int(np.max(np.maximum(centres - starts, ends - centres)))
    x = np.clip(geo.g_norm[None, :] / bounds.r_apogee_km[:, None] * np.cos(geo.mask_rad),
                -1.0, 1.0)
    lam = (np.pi / 2 - geo.mask_rad - np.arcsin(x) + math.radians(0.5)
           + (bounds.omega_max * half * step_s)[:, None])
    thr = np.cos(np.clip(lam, 0.0, np.pi)).astype(np.float32)  # (N, S)
    cos_t, sin_t = np.cos(rot.theta), np.sin(rot.theta)

    # Coarse pass in TEME: rotate the station directions instead of the satellites.
    rc = np.ascontiguousarray(r_teme[:, centres].transpose(1, 0, 2))  # (Q, N, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        rc /= np.sqrt(np.einsum("qnk,qnk->qn", rc, rc))[..., None]
    gx, gy, gz = geo.g_hat[:, 0], geo.g_hat[:, 1], geo.g_hat[:, 2]
    cq_, sq_ = cos_t[centres][:, None], sin_t[centres][:, None]
    g_teme = np.stack([cq_ * gx - sq_ * gy, sq_ * gx + cq_ * gy,
                       np.broadcast_to(gz, (n_blocks, n_st))], axis=1)  # (Q, 3, S)
    cosang = np.matmul(rc.astype(np.float32), g_teme.astype(np.float32))  # (Q, N, S)
    cand = cosang >= thr[None, :, :]
    del cosang, rc
    # (satellite, station, block) order makes the expanded steps sorted by (pair, step).
    ci, cj, cq = np.nonzero(cand.transpose(1, 2, 0))
    del cand
    tl = (starts[cq][:, None] + np.arange(m)[None, :]).ravel()
    sat = np.repeat(ci, m)
    j = np.repeat(cj, m)
    if tc % m:
        ok = tl < tc
        tl, sat, j = tl[ok], sat[ok], j[ok]

    # Exact elevation test at the candidate steps (ITRS, float64).
    idx = sat * tc + tl
    rt = np.take(r_teme.reshape(-1, 3), idx, axis=0)
    c, s = cos_t[tl], sin_t[tl]
    dx = c * rt[:, 0]
    dx += s * rt[:, 1]
    dx -= geo.pos[j, 0]
    dy = c * rt[:, 1]
    dy -= s * rt[:, 0]
    dy -= geo.pos[j, 1]
    dz = rt[:, 2] - geo.pos[j, 2]
    dist = np.sqrt(dx * dx + dy * dy + dz * dz)
    elev = dx * geo.up[j, 0]
    elev += dy * geo.up[j, 1]
    elev += dz * geo.up[j, 2]
    vi = np.flatnonzero(elev >= dist * geo.sin_m[j])
    sat, j, tl, dist = sat[vi], j[vi], tl[vi], dist[vi]
    key = (sat.astype(np.int64) * n_st + j) * tc + tl  # sorted by construction

    # Edges: rise at (pair, tl) when tl-1 is not visible; set after tl when tl+1 is not.
    prev_vis = np.zeros(len(key), bool)
    prev_vis[1:] = key[:-1] == key[1:] - 1
    next_vis = np.zeros(len(key), bool)
    next_vis[:-1] = key[1:] == key[:-1] + 1
    events = []
    for mask, rising in (((tl >= 1) & ~prev_vis, True), ((tl <= tc - 2) & ~next_vis, False)):
        e = np.flatnonzero(mask)
        a = tl[e] - 1 if rising else tl[e]  # bracket (a, a + 1)
        frac = _refine(geo, r_teme, v_teme, rot, sat[e], j[e], a, rising, step_s, tol_s)
        pair = sat[e].astype(np.int64) * n_st + j[e]
        # Keyed by the first visible step (rise) / the first invisible step (set).
        events.append((pair * n_steps + steps[a + 1], (steps[a] + frac) * step_s))

    k = np.flatnonzero(tl >= 1) if first_is_overlap else slice(None)
    return GroundChunk(
        pair=(sat[k] * n_st + j[k]).astype(np.int32), step=steps[tl[k]].astype(np.int32),
        range_km=dist[k].astype(np.float32),
        rise_key=events[0][0], rise_time_s=events[0][1],
        set_key=events[1][0], set_time_s=events[1][1],
    )


def _refine(geo: GroundGeometry, r_teme: np.ndarray, v_teme: np.ndarray, rot: EarthRotation,
            sat: np.ndarray, j: np.ndarray, a: np.ndarray, rising: bool, step_s: float,
            tol_s: float) -> np.ndarray:
    """Fraction of the step after chunk time ``a`` where each pass edge lies."""
    if len(sat) == 0:
        return np.zeros(0)
    ends = []
    for t_idx in (a, a + 1):
        r, v = r_teme[sat, t_idx], v_teme[sat, t_idx]
        th, thd = rot.theta[t_idx], rot.theta_dot[t_idx]
        c, s = np.cos(th)[:, None], np.sin(th)[:, None]
        p = np.concatenate([c * r[:, :1] + s * r[:, 1:2], c * r[:, 1:2] - s * r[:, :1],
                            r[:, 2:]], axis=1)
        ends.append((p, teme_to_itrs_velocity(r, v, th, thd)))
    (p0, v0), (p1, v1) = ends
    return refine_crossings(geo, p0, v0, p1, v1, j, step_s, np.full(len(j), rising), tol_s)


@dataclass
class PassWindows:
    """Visibility windows per (satellite, station) pair with their grid samples."""

    sat: np.ndarray  # per window
    station: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    k0: np.ndarray  # first grid step inside
    n: np.ndarray  # number of grid samples
    offset: np.ndarray  # into the sample arrays
    range_km: np.ndarray  # per sample (windows are contiguous, in order)


def assemble_windows(chunks: list[GroundChunk], n_st: int, n_steps: int, step_s: float
                     ) -> PassWindows:
    """Join chunk samples into windows ordered by (satellite, station, start)."""
    def cat(name: str, dtype) -> np.ndarray:
        parts = [getattr(c, name) for c in chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    pair = cat("pair", np.int32)
    # Each chunk is sorted by (pair, step) and chunks follow in time, so a stable sort on the
    # pair alone (timsort merging the chunk runs) gives (pair, step) order.
    order = np.argsort(pair, kind="stable")
    pair = pair[order]
    step = cat("step", np.int32)[order]
    rng = cat("range_km", np.float32)[order]
    new = np.ones(len(pair), bool)
    if len(pair):
        new[1:] = (pair[1:] != pair[:-1]) | (step[1:] != step[:-1] + 1)
    first = np.flatnonzero(new)
    # No station ever in view (e.g. a polar station under a low-inclination shell): no windows.
    last = np.append(first[1:], len(pair)) - 1 if len(first) else first
    wpair = pair[first].astype(np.int64)
    k_first, k_last = step[first].astype(np.int64), step[last].astype(np.int64)
    start = _lookup(wpair * n_steps + k_first, cat("rise_key", np.int64),
                    cat("rise_time_s", np.float64), k_first == 0, 0.0, "rise")
    end = _lookup(wpair * n_steps + k_last + 1, cat("set_key", np.int64),
                  cat("set_time_s", np.float64), k_last == n_steps - 1, n_steps * step_s, "set")
    return PassWindows(
        sat=(wpair // n_st).astype(np.int32), station=(wpair % n_st).astype(np.int32),
        start_s=start, end_s=end, k0=k_first, n=(last - first + 1), offset=first,
        range_km=rng,
    )


def _lookup(k: np.ndarray, keys: np.ndarray, vals: np.ndarray, at_edge: np.ndarray,
            edge_value: float, what: str) -> np.ndarray:
    order = np.argsort(keys)
    keys, vals = keys[order], vals[order]
    pos = np.clip(np.searchsorted(keys, k), 0, max(len(keys) - 1, 0))
    found = (keys[pos] == k) if len(keys) else np.zeros(len(k), bool)
    if not np.all(found | at_edge):
        raise RuntimeError(f"internal error: {np.sum(~(found | at_edge))} pass {what} edges lost")
    out = np.where(at_edge, edge_value, vals[pos] if len(keys) else edge_value)
    return out.astype(np.float64)
