"""Walker shells, presets, bad input, and the period of a circular orbit."""

from __future__ import annotations

import numpy as np
import pytest

from research.orbit import (
    TimeGrid,
    constellation_preset,
    list_presets,
    propagate_teme,
    two_body_period_s,
    walker,
    walker_star,
)

EPOCH = "2024-07-16T12:00:00Z"


def test_walker_delta_layout():
    c = walker(6, 11, 550, 53, phasing=1, epoch=EPOCH)
    assert len(c) == 66 and c.n_planes == 6
    assert c.names[0] == "sat-P00-S00" and c.names[-1] == "sat-P05-S10"
    assert list(c.planes[:12]) == [0] * 11 + [1]
    # Orbit normals of neighbouring planes are 60 degrees apart in RAAN.
    grid = TimeGrid(EPOCH, 60, 10)
    jd, fr = grid.jd_utc()
    r, v, err = propagate_teme(c, jd, fr)
    assert not err.any()
    h = np.cross(r[:, 0], v[:, 0])
    node = np.degrees(np.arctan2(h[:, 0], -h[:, 1]))  # RAAN from the normal
    d = (node[11] - node[0]) % 360
    assert abs(d - 60) < 0.1
    inc = np.degrees(np.arccos(h[:, 2] / np.linalg.norm(h, axis=1)))
    assert np.allclose(inc, 53, atol=0.05)


def test_walker_star_spreads_over_180():
    c = walker_star(6, 11, 780, 86.4, epoch=EPOCH)
    assert c.kind == "walker-star" and c.params["kind"] == "star"


def test_presets_and_unknown_preset():
    assert {"demo_6x11", "starlink_shell1"} <= set(list_presets())
    s = constellation_preset("starlink_shell1", epoch=EPOCH)
    assert len(s) == 72 * 22 and s.params["altitude_km"] == 550
    with pytest.raises(KeyError, match="unknown constellation preset 'starlink'.*demo_6x11"):
        constellation_preset("starlink")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(altitude_km=-10), "altitude_km must be positive"),
        (dict(planes=0), "planes must be a positive integer"),
        (dict(sats_per_plane=0), "sats_per_plane must be a positive integer"),
        (dict(inclination_deg=200), "inclination_deg"),
        (dict(phasing=9), "phasing"),
        (dict(kind="rosette"), "kind"),
    ],
)
def test_walker_bad_input(kwargs, match):
    args = dict(planes=6, sats_per_plane=11, altitude_km=550, inclination_deg=53)
    with pytest.raises(ValueError, match=match):
        walker(**{**args, **kwargs})


def test_empty_constellation_is_an_error():
    from research.orbit import from_tles

    with pytest.raises(ValueError, match="empty constellation"):
        from_tles([], source="starlink.txt")


@pytest.mark.parametrize("inc", [53.0, 97.6])
def test_period_of_550km_circular_orbit(inc):
    """Nodal period from SGP4 within 0.1 % of the two-body period 2 pi sqrt(a^3/mu)."""
    c = walker(1, 1, 550, inc, epoch=EPOCH)
    grid = TimeGrid(EPOCH, 3.2 * 3600, 1.0)
    jd, fr = grid.jd_utc()
    r, _, _ = propagate_teme(c, jd, fr)
    z = r[0, :, 2]
    k = np.flatnonzero((z[:-1] < 0) & (z[1:] >= 0))  # ascending node crossings
    t_cross = grid.times[k] - z[k] / (z[k + 1] - z[k]) * grid.step_s
    period = np.diff(t_cross)
    expected = two_body_period_s(550)
    assert abs(expected - 5736) < 5  # ~95.6 min
    assert np.all(np.abs(period / expected - 1) < 1e-3)
