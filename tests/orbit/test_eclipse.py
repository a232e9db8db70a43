"""Analytic Sun and cylindrical shadow."""

from __future__ import annotations

import numpy as np

from research.constants import AU_KM
from research.orbit.eclipse import (
    cylindrical_eclipse_fraction,
    sun_position_teme_km,
    sunlit_mask,
)
from research.orbit.timegrid import TimeGrid


def _radec(jd):
    s = sun_position_teme_km(jd)
    ra = np.degrees(np.arctan2(s[1], s[0])) % 360
    dec = np.degrees(np.arcsin(s[2] / np.linalg.norm(s)))
    return ra, dec, np.linalg.norm(s) / AU_KM


def _jd(iso):
    jd, fr = TimeGrid(iso, 60, 60).jd_utc(0.0)
    return float(jd + fr)


def test_sun_at_equinox_and_solstice_2024():
    ra, dec, _ = _radec(_jd("2024-03-20T03:06:00Z"))  # March equinox
    assert abs(dec) < 0.02 and min(ra, 360 - ra) < 0.05
    _, dec, _ = _radec(_jd("2024-06-20T20:51:00Z"))  # June solstice
    assert abs(dec - 23.44) < 0.02
    _, _, dist = _radec(_jd("2024-07-05T05:06:00Z"))  # aphelion
    assert abs(dist - 1.01673) < 2e-4


def test_shadow_fraction_of_orbit_in_the_sun_plane():
    sun = sun_position_teme_km(_jd("2024-07-16T12:00:00Z"))
    s = sun / np.linalg.norm(sun)
    q = np.cross(s, [0.0, 0.0, 1.0])
    q /= np.linalg.norm(q)
    u = np.linspace(0, 2 * np.pi, 20000, endpoint=False)
    r = (6378.137 + 550.0) * (np.cos(u)[:, None] * s + np.sin(u)[:, None] * q)
    lit = sunlit_mask(r[None], np.repeat(sun[None], len(u), axis=0))[0]
    expected = cylindrical_eclipse_fraction(550.0)
    assert abs((1 - lit.mean()) - expected) < 1e-3
    assert 0.36 < expected < 0.38


def test_plan_sunlit_fraction(demo):
    frac = demo.sunlit_fraction()
    assert len(frac) == len(demo.satellites)
    assert all(0.55 < f <= 1.0 for f in frac.values())
    assert isinstance(demo.sunlit("sat-P00-S00", 100.0), bool)
