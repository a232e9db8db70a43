"""Eclipse: when a satellite is in the Earth's shadow, without downloading an ephemeris.

The Sun comes from the low-precision formula of the Astronomical Almanac (section C, "Sun,
low precision": mean longitude and anomaly linear in time, equation of centre to 2g), good to
about 0.01 degree in 1950-2050 and given in the equator and equinox of date, which we use as
SGP4's TEME (the two differ by nutation in right ascension, < 0.005 deg). The shadow is the
cylindrical model (a cylinder of Earth radius behind the Earth, no penumbra): at 550 km the
penumbra lasts ~8 s per orbit, well below a 10 s grid.
"""

from __future__ import annotations

import numpy as np

from research.constants import AU_KM, R_EARTH_KM


def sun_position_teme_km(jd_utc: np.ndarray | float) -> np.ndarray:
    """Geocentric Sun position (km), equator/equinox of date, shape ``(..., 3)``.

    Args:
        jd_utc: Julian date (UTC is fine: the difference to TT moves the Sun by ~0.0008 deg).
    """
    n = np.asarray(jd_utc, dtype=np.float64) - 2451545.0
    mean_lon = np.radians((280.460 + 0.9856474 * n) % 360.0)
    g = np.radians((357.528 + 0.9856003 * n) % 360.0)
    lam = mean_lon + np.radians(1.915) * np.sin(g) + np.radians(0.020) * np.sin(2 * g)
    dist_au = 1.00014 - 0.01671 * np.cos(g) - 0.00014 * np.cos(2 * g)
    eps = np.radians(23.439 - 0.0000004 * n)
    r = dist_au * AU_KM
    return np.stack(
        [r * np.cos(lam), r * np.cos(eps) * np.sin(lam), r * np.sin(eps) * np.sin(lam)], axis=-1
    )


def sunlit_mask(r_teme_km: np.ndarray, sun_km: np.ndarray) -> np.ndarray:
    """True where a satellite is in sunlight (cylindrical shadow).

    Args:
        r_teme_km: positions ``(N, T, 3)``.
        sun_km: Sun positions ``(T, 3)`` in the same frame.
    """
    xyz = np.moveaxis(r_teme_km, -1, 0)
    return sunlit_mask_planes(xyz, np.einsum("knt,knt->nt", xyz, xyz), sun_km)


def sunlit_mask_planes(xyz: np.ndarray, r2: np.ndarray, sun_km: np.ndarray) -> np.ndarray:
    """:func:`sunlit_mask` on component planes ``(3, N, T)`` with squared radii ``(N, T)``."""
    s_hat = (sun_km / np.linalg.norm(sun_km, axis=-1, keepdims=True)).astype(xyz.dtype)
    along = xyz[0] * s_hat[:, 0]
    along += xyz[1] * s_hat[:, 1]
    along += xyz[2] * s_hat[:, 2]
    lit = along >= 0
    along *= along
    np.subtract(r2, along, out=along)
    lit |= along >= R_EARTH_KM**2
    return lit


def beta_angle_deg(r_teme_km: np.ndarray, v_teme_km_s: np.ndarray, sun_km: np.ndarray
                   ) -> np.ndarray:
    """Angle between the orbit plane and the Sun direction (degrees), per satellite and time."""
    h = np.cross(r_teme_km, v_teme_km_s)
    h /= np.linalg.norm(h, axis=-1, keepdims=True)
    s_hat = sun_km / np.linalg.norm(sun_km, axis=-1, keepdims=True)
    return np.degrees(np.arcsin(np.clip(np.einsum("ntk,tk->nt", h, s_hat), -1, 1)))


def cylindrical_eclipse_fraction(altitude_km: float, beta_deg: float = 0.0) -> float:
    """Analytic shadow fraction of a circular orbit in the cylindrical model (for checks)."""
    r = R_EARTH_KM + altitude_km
    b = np.radians(beta_deg)
    x = np.sqrt(max(r**2 - R_EARTH_KM**2, 0.0)) / (r * np.cos(b))
    if x >= 1.0:
        return 0.0
    return float(np.arccos(x) / np.pi)
