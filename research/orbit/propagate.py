"""Vectorised SGP4 propagation and the frames it needs (TEME, ITRS, GCRS) via Skyfield.

Positions come from ``sgp4.api.SatrecArray`` (the C++ extension, many satellites x many times
per call) in SGP4's TEME frame. TEME -> ITRS is a rotation about z by the GMST-1982 angle
(Skyfield's ``theta_GMST1982``, the same transform as Skyfield's ``TEME_to_ITRF`` and its ``itrs``
frame without polar motion, which the built-in timescale does not carry). TEME -> GCRS uses
Skyfield's ``TEME.rotation_at`` (precession-nutation included).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sgp4.api import SGP4_ERRORS, SatrecArray, accelerated

from research.constants import R_EARTH_KM, WGS84_F
from research.orbit.constellation import Constellation
from research.orbit.timegrid import DAY_S, TimeGrid


def check_accelerated(strict: bool = False) -> bool:
    """Whether sgp4's compiled extension is in use (the pure-Python fallback is ~100x slower)."""
    if not accelerated:
        msg = "sgp4 C++ extension not available: propagation falls back to slow pure Python"
        if strict:
            raise RuntimeError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return bool(accelerated)


@dataclass
class EarthRotation:
    """GMST-1982 angle (rad) and its rate (rad/s) at each time: the TEME -> ITRS rotation."""

    theta: np.ndarray
    theta_dot: np.ndarray

    @classmethod
    def for_grid(cls, grid: TimeGrid, seconds: np.ndarray | None = None) -> EarthRotation:
        from skyfield.sgp4lib import theta_GMST1982

        t = grid.skyfield_times(seconds)
        theta, theta_dot = theta_GMST1982(t.whole, t.ut1_fraction)
        theta = np.atleast_1d(np.asarray(theta, dtype=np.float64))
        theta_dot = np.broadcast_to(np.asarray(theta_dot, dtype=np.float64) / DAY_S, theta.shape)
        return cls(theta, np.array(theta_dot))

    def subset(self, idx: slice | np.ndarray) -> EarthRotation:
        return EarthRotation(self.theta[idx], self.theta_dot[idx])


class PropagationError(ValueError):
    """SGP4 cannot give a trustworthy position for a satellite over the window."""


# Julian date of the Unix epoch, to name failing times in UTC.
_JD_UNIX_EPOCH = 2440587.5
DEFAULT_MAX_ELEMENT_AGE_DAYS = 30.0


def _utc(jd: float) -> str:
    from datetime import datetime, timezone

    stamp = datetime.fromtimestamp(round((jd - _JD_UNIX_EPOCH) * DAY_S), tz=timezone.utc)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def _named(constellation: Constellation, rows: np.ndarray, detail, limit: int = 5) -> str:
    text = "; ".join(f"{constellation.names[i]} ({detail(i)})" for i in rows[:limit])
    return text + (f"; and {len(rows) - limit} more" if len(rows) > limit else "")


def propagate_teme(
    constellation: Constellation, jd: np.ndarray, fr: np.ndarray, *, strict: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (km) and velocities (km/s) in TEME for every satellite at every time.

    Args:
        strict: raise :class:`PropagationError` when SGP4 fails for any satellite at any time
            (a decayed orbit, eccentricity pushed to 1, a mean motion of zero), naming the
            satellites, the first failing time and SGP4's reason, instead of returning NaN.

    Returns:
        ``(r, v, err)`` of shapes ``(N, T, 3)``, ``(N, T, 3)``, ``(N, T)``; entries with a
        non-zero SGP4 error code are NaN.
    """
    jd, fr = np.ascontiguousarray(jd), np.ascontiguousarray(fr)
    err, r, v = SatrecArray(constellation.satrecs).sgp4(jd, fr)
    if err.any():
        if strict:
            rows = np.flatnonzero(err.any(axis=1))

            def detail(i: int) -> str:
                k = int(np.argmax(err[i] != 0))
                code = int(err[i, k])
                return f"from {_utc(jd[k] + fr[k])}: {SGP4_ERRORS.get(code, f'error {code}')}"

            raise PropagationError(
                f"SGP4 fails for {len(rows)} of {len(constellation)} satellites within the "
                f"window: {_named(constellation, rows, detail)}. Drop them (a TLE filter such "
                "as altitude_km or names) or shorten the window.")
        bad = err != 0
        r[bad] = np.nan
        v[bad] = np.nan
    return r, v, err


def element_epochs_jd(constellation: Constellation) -> np.ndarray:
    """Each satellite's element-set epoch as a Julian date (UTC)."""
    return np.array([s.jdsatepoch + s.jdsatepochF for s in constellation.satrecs])


def check_element_ages(constellation: Constellation, grid: TimeGrid,
                       max_age_days: float | None = DEFAULT_MAX_ELEMENT_AGE_DAYS) -> None:
    """Refuse element sets whose epoch lies more than ``max_age_days`` from any time of the window.

    SGP4's error grows by kilometres a day away from the epoch, so a stale snapshot (or an epoch
    mangled to 1957) gives finite, confident and wrong positions; ``None`` turns the check off.
    """
    if max_age_days is None:
        return
    if not max_age_days > 0:
        raise ValueError(f"max element age must be > 0 days (or None), got {max_age_days}")
    jd, fr = grid.jd_utc(np.array([0.0, grid.end_s]))
    start, end = float(jd[0] + fr[0]), float(jd[1] + fr[1])
    epochs = element_epochs_jd(constellation)
    age = np.maximum(np.abs(epochs - start), np.abs(epochs - end))
    rows = np.flatnonzero(age > max_age_days)
    if len(rows):
        raise PropagationError(
            f"{len(rows)} of {len(constellation)} element sets are more than {max_age_days:g} "
            f"days from the window {_utc(start)} to {_utc(end)}: "
            f"{_named(constellation, rows, lambda i: f'epoch {_utc(epochs[i])}')}. "
            "Use a snapshot taken near the window, move the window, or raise the limit "
            "(max_age_days).")


def rotate_z(xyz: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Apply ``R3(theta)`` (frame rotation about z) to ``(..., T, 3)`` vectors, per time."""
    c, s = np.cos(theta), np.sin(theta)
    out = np.empty_like(xyz)
    x, y = xyz[..., 0], xyz[..., 1]
    out[..., 0] = c * x + s * y
    out[..., 1] = c * y - s * x
    out[..., 2] = xyz[..., 2]
    return out


def teme_to_itrs(r: np.ndarray, rot: EarthRotation) -> np.ndarray:
    """TEME positions ``(..., T, 3)`` to ITRS (PEF; no polar motion)."""
    return rotate_z(r, rot.theta)


def teme_to_itrs_velocity(r: np.ndarray, v: np.ndarray, theta: np.ndarray,
                          theta_dot: np.ndarray) -> np.ndarray:
    """ITRS velocity ``R v + dR/dt r`` (km/s) for TEME ``r, v``, angle and rate per vector."""
    c, s = np.cos(theta), np.sin(theta)
    x, y = r[..., 0], r[..., 1]
    xi = c * x + s * y
    yi = c * y - s * x
    out = np.empty_like(v)
    out[..., 0] = c * v[..., 0] + s * v[..., 1] + theta_dot * yi
    out[..., 1] = c * v[..., 1] - s * v[..., 0] - theta_dot * xi
    out[..., 2] = v[..., 2]
    return out


def teme_to_gcrs(r: np.ndarray, grid: TimeGrid, seconds: np.ndarray | None = None) -> np.ndarray:
    """TEME positions ``(N, T, 3)`` to GCRS with Skyfield's TEME frame (precession-nutation)."""
    from skyfield.sgp4lib import TEME

    t = grid.skyfield_times(seconds)
    mat = np.asarray(TEME.rotation_at(t))  # (3, 3) or (3, 3, T): GCRS -> TEME
    if mat.ndim == 2:
        mat = mat[:, :, None]
    # GCRS = R^T r_TEME for each time.
    return np.einsum("jit,ntj->nti", mat, r)


def geodetic_from_itrs(r_km: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 latitude (deg), longitude (deg) and height (km) of ITRS points (Bowring, 2 iters)."""
    x, y, z = r_km[..., 0], r_km[..., 1], r_km[..., 2]
    a, f = R_EARTH_KM, WGS84_F
    b = a * (1 - f)
    e2 = f * (2 - f)
    ep2 = e2 / (1 - e2)
    p = np.hypot(x, y)
    lon = np.degrees(np.arctan2(y, x))
    beta = np.arctan2(z, (1 - f) * p)
    for _ in range(2):
        phi = np.arctan2(z + ep2 * b * np.sin(beta) ** 3, p - e2 * a * np.cos(beta) ** 3)
        beta = np.arctan2((1 - f) * np.sin(phi), np.cos(phi))
    sphi = np.sin(phi)
    n = a / np.sqrt(1 - e2 * sphi**2)
    h = p * np.cos(phi) + (z + e2 * n * sphi) * sphi - n
    return np.degrees(phi), lon, h


def subsatellite_points(constellation: Constellation, grid: TimeGrid,
                        seconds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Geodetic latitude and longitude (deg), shape ``(N, T)``, e.g. for ground tracks."""
    jd, fr = grid.jd_utc(seconds)
    r, _, _ = propagate_teme(constellation, jd, fr)
    rot = EarthRotation.for_grid(grid, seconds)
    lat, lon, _ = geodetic_from_itrs(teme_to_itrs(r, rot))
    return lat, lon


def positions_itrs(constellation: Constellation, grid: TimeGrid,
                   seconds: np.ndarray | None = None) -> np.ndarray:
    """ITRS positions (km), shape ``(N, T, 3)``."""
    jd, fr = grid.jd_utc(seconds)
    r, _, _ = propagate_teme(constellation, jd, fr)
    return teme_to_itrs(r, EarthRotation.for_grid(grid, seconds))
