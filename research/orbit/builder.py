"""Build a ContactPlan: propagate in chunks of time, then visibility, ISLs and eclipse per chunk.

Chunks keep memory flat at constellation scale (a full Starlink-like day never holds all
positions at once); each chunk after the first repeats the previous chunk's last step so that
pass edges between chunks are found and refined exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from research.orbit.constellation import Constellation
from research.orbit.contact_plan import ContactPlan
from research.orbit.eclipse import sun_position_teme_km, sunlit_mask_planes
from research.orbit.isl import (
    KIND_GROUND,
    KIND_NEAREST,
    IslConfig,
    grid_edges,
    isl_chunk,
    nearest_edges,
)
from research.orbit.link_budget import LINK_PRESETS, LinkModel
from research.orbit.propagate import (
    DEFAULT_MAX_ELEMENT_AGE_DAYS,
    EarthRotation,
    check_accelerated,
    check_element_ages,
    propagate_teme,
)
from research.orbit.stations import GroundStation, check_unique
from research.orbit.timegrid import TimeGrid
from research.orbit.visibility import (
    GroundGeometry,
    SatelliteBounds,
    assemble_windows,
    ground_chunk,
)

log = logging.getLogger(__name__)

DEFAULT_LINKS = {"downlink": "x_band_eo", "uplink": "s_band_uplink", "isl": "optical_isl"}


def default_links() -> dict[str, LinkModel]:
    """X-band downlink, S-band uplink, optical ISL (see :mod:`research.orbit.link_budget`)."""
    return {k: LINK_PRESETS[v] for k, v in DEFAULT_LINKS.items()}


@dataclass
class BuildStats:
    """Wall-clock seconds per stage, for benchmarks."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, dt: float) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + dt


def build_contact_plan(
    constellation: Constellation,
    stations: Sequence[GroundStation],
    grid: TimeGrid,
    *,
    links: dict[str, LinkModel] | None = None,
    isl: IslConfig | None = None,
    eclipse: bool = True,
    refine_tol_s: float = 0.1,
    chunk_elements: int = 8_000_000,
    stats: BuildStats | None = None,
    meta: dict | None = None,
    max_element_age_days: float | None = DEFAULT_MAX_ELEMENT_AGE_DAYS,
) -> ContactPlan:
    """Compute the contact plan of a scenario.

    Args:
        constellation: the satellites.
        stations: ground stations (may be empty for an ISL-only plan).
        grid: the time grid.
        links: ``{"downlink", "uplink", "isl"}`` link models (defaults: :func:`default_links`).
        isl: ISL topology and constraints (default +Grid for Walker shells, none for TLE sets).
        eclipse: also record when each satellite is sunlit.
        refine_tol_s: pass edges are refined to this tolerance (at most 1 s).
        chunk_elements: satellites x steps x stations per chunk (memory bound).
        stats: filled with the time spent per stage.
        meta: extra JSON-able data stored with the plan.
        max_element_age_days: refuse element sets whose epoch is further than this from the
            window (``None``: no limit). SGP4 failing for any satellite at any step is an error
            too (:class:`research.orbit.propagate.PropagationError`), never NaN positions.
    """
    if not 0 < refine_tol_s <= 1.0:
        raise ValueError(f"refine_tol_s must be in (0, 1] seconds, got {refine_tol_s}")
    check_accelerated()
    if constellation.kind == "tle":  # synthetic shells are built at the plan's epoch
        check_element_ages(constellation, grid, max_element_age_days)
    stations = check_unique(stations)
    links = {**default_links(), **(links or {})}
    if isl is None:
        isl = IslConfig(topology="grid" if constellation.is_walker else "none")
    stats = stats if stats is not None else BuildStats()
    n_sat, n_st, n_t = len(constellation), len(stations), grid.n_steps
    isl_range = isl.max_range_km
    if isl_range is None and links["isl"].max_range_m is not None:
        isl_range = links["isl"].max_range_m / 1e3

    t = time.perf_counter()
    jd, fr = grid.jd_utc()
    rot = EarthRotation.for_grid(grid)
    sun = sun_position_teme_km(jd + fr) if eclipse else None
    stats.add("frames", time.perf_counter() - t)

    t = time.perf_counter()
    a, b, kind = _isl_edges(constellation, grid, isl, isl_range, jd, fr)
    stats.add("isl_topology", time.perf_counter() - t)
    n_e = len(a)
    isl_up = np.zeros((n_e, n_t), dtype=bool)
    isl_rng = np.zeros((n_e, n_t), dtype=np.float32)
    sunlit = np.zeros((n_sat, n_t), dtype=bool) if eclipse else None
    geo = GroundGeometry(stations) if n_st else None
    bounds = SatelliteBounds.from_satrecs(constellation.satrecs)
    chunks = []

    per_step = max(n_sat * max(n_st, 4), 1)
    tc = int(min(max(chunk_elements // per_step, 16), n_t))
    for k0 in range(0, n_t, tc):
        k1 = min(k0 + tc, n_t)
        lo = max(k0 - 1, 0)  # one step of overlap for edge detection
        steps = np.arange(lo, k1)
        t = time.perf_counter()
        r, v, _ = propagate_teme(constellation, jd[lo:k1], fr[lo:k1], strict=True)
        stats.add("propagate", time.perf_counter() - t)
        if geo is not None:
            t = time.perf_counter()
            chunks.append(ground_chunk(geo, r, v, rot.subset(slice(lo, k1)), steps, k0 > 0, n_t,
                                       grid.step_s, refine_tol_s, bounds))
            stats.add("ground", time.perf_counter() - t)
        if n_e or sunlit is not None:
            t = time.perf_counter()
            xyz = np.moveaxis(r[:, k0 - lo:], -1, 0).astype(np.float32)  # (3, N, Tc) planes
            r2 = xyz[0] * xyz[0]
            r2 += xyz[1] * xyz[1]
            r2 += xyz[2] * xyz[2]
            stats.add("planes", time.perf_counter() - t)
            if n_e:
                t = time.perf_counter()
                isl_up[:, k0:k1], isl_rng[:, k0:k1] = isl_chunk(xyz, r2, a, b, kind, isl,
                                                                isl_range)
                stats.add("isl", time.perf_counter() - t)
            if sunlit is not None:
                t = time.perf_counter()
                sunlit[:, k0:k1] = sunlit_mask_planes(xyz, r2, sun[k0:k1])
                stats.add("eclipse", time.perf_counter() - t)
        del r, v

    t = time.perf_counter()
    plan = _assemble(constellation, stations, grid, links, chunks, a, b, kind, isl_up, isl_rng,
                     sunlit, n_st)
    plan.meta.update({
        "constellation": {"kind": constellation.kind, **constellation.params},
        "stations": [s.to_dict() for s in stations],
        "isl": isl.to_dict(),
        "refine_tol_s": refine_tol_s,
        **(meta or {}),
    })
    stats.add("assemble", time.perf_counter() - t)
    return plan


def _isl_edges(c: Constellation, grid: TimeGrid, isl: IslConfig, isl_range: float | None,
               jd: np.ndarray, fr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8))
    if isl.topology == "none":
        return empty
    parts = []
    if isl.topology in ("ring", "grid"):
        parts.append(grid_edges(c, inter_plane=isl.topology == "grid"))
    if isl.topology == "nearest" or isl.add_nearest:
        r0, _, _ = propagate_teme(c, jd[:1], fr[:1], strict=True)
        na, nb = nearest_edges(r0[:, 0], isl.nearest_k, isl_range, isl.grazing_altitude_km)
        parts.append((na, nb, np.full(len(na), KIND_NEAREST, np.int8)))
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    kind = np.concatenate([p[2] for p in parts])
    _, first = np.unique(a * len(c) + b, return_index=True)  # grid links win over nearest
    first = np.sort(first)
    return a[first], b[first], kind[first]


def _runs(up: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, first column and length of each run of True in a 2-D boolean array."""
    n_rows, n_cols = up.shape
    if up.all():  # the usual case for ISLs: every link up all the time
        return np.arange(n_rows), np.zeros(n_rows, np.int64), np.full(n_rows, n_cols)
    flat = up.ravel()
    begin = flat.copy()
    begin[1:] &= ~flat[:-1]
    begin[::n_cols] = flat[::n_cols]
    end = flat.copy()
    end[:-1] &= ~flat[1:]
    end[n_cols - 1::n_cols] = flat[n_cols - 1::n_cols]
    b, e = np.flatnonzero(begin), np.flatnonzero(end)
    return b // n_cols, b % n_cols, e - b + 1


def _assemble(c, stations, grid, links, chunks, a, b, kind, isl_up, isl_rng, sunlit,
              n_st) -> ContactPlan:
    n_sat, n_t, dt = len(c), grid.n_steps, grid.step_s
    # Ground links: one per (satellite, station) pair that has at least one window.
    if n_st:
        pw = assemble_windows(chunks, n_st, n_t, dt)
        pair = pw.sat.astype(np.int64) * n_st + pw.station
        uniq, g_link = np.unique(pair, return_inverse=True)
        g_a, g_b = uniq // n_st, n_sat + uniq % n_st
        g_windows = (g_link, pw.start_s, pw.end_s, pw.k0, pw.n, pw.offset)
        g_rng = pw.range_km.astype(np.float32)
    else:
        g_a = g_b = np.zeros(0, np.int64)
        g_windows = tuple(np.zeros(0) for _ in range(6))
        g_rng = np.zeros(0, np.float32)
    n_g = len(g_a)
    # ISL windows: runs of consecutive up steps; samples in (edge, step) order.
    all_up = bool(isl_up.all())
    row, k0, n = _runs(isl_up)
    i_off = len(g_rng) + np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
    i_start = k0 * dt
    i_end = np.minimum((k0 + n) * dt, grid.end_s)
    return ContactPlan(
        grid=grid, satellites=c.names, stations=[s.node_id for s in stations], planes=c.planes,
        link_a=np.concatenate([g_a, a]), link_b=np.concatenate([g_b, b]),
        link_kind=np.concatenate([np.full(n_g, KIND_GROUND, np.int8), kind]),
        win_link=np.concatenate([g_windows[0], n_g + row]).astype(np.int64),
        win_start=np.concatenate([g_windows[1], i_start]),
        win_end=np.concatenate([g_windows[2], i_end]),
        win_k0=np.concatenate([g_windows[3], k0]).astype(np.int64),
        win_n=np.concatenate([g_windows[4], n]).astype(np.int64),
        win_off=np.concatenate([g_windows[5], i_off]).astype(np.int64),
        range_km=np.concatenate([g_rng, isl_rng.ravel() if all_up else isl_rng[isl_up]]),
        models=links,
        sunlit_bits=np.packbits(sunlit, axis=1) if sunlit is not None else None,
    )
