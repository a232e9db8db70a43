"""Propagation and frames agree with Skyfield's own EarthSatellite (to 1 m)."""

from __future__ import annotations

import numpy as np
import pytest
from skyfield.api import EarthSatellite, wgs84
from skyfield.framelib import itrs

from research.orbit import (
    TimeGrid,
    check_accelerated,
    from_tle_file,
    positions_itrs,
    propagate_teme,
    teme_to_gcrs,
    walker,
)
from research.orbit.propagate import geodetic_from_itrs
from research.orbit.timegrid import timescale
from research.orbit.tle import filter_tles

EPOCH = "2024-07-16T12:00:00Z"
OFFSETS = np.array([0.0, 1234.5, 7200.0, 43210.0, 86000.0])


def _compare(constellation):
    grid = TimeGrid(EPOCH, 86400, 60)
    ts = timescale()
    t = grid.skyfield_times(OFFSETS)
    jd, fr = grid.jd_utc(OFFSETS)
    r, _, err = propagate_teme(constellation, jd, fr)
    assert not err.any()
    gcrs = teme_to_gcrs(r, grid, OFFSETS)
    itrs_ours = positions_itrs(constellation, grid, OFFSETS)
    for i, rec in enumerate(constellation.satrecs):
        sat = EarthSatellite.from_satrec(rec, ts)
        pos = sat.at(t)
        assert np.max(np.abs(gcrs[i] - pos.position.km.T)) < 1e-3  # 1 m
        assert np.max(np.abs(itrs_ours[i] - pos.frame_xyz(itrs).km.T)) < 1e-3


def test_accelerated_extension_in_use():
    assert check_accelerated(strict=True)


def test_walker_positions_match_skyfield():
    _compare(walker(3, 2, 550, 53, epoch=EPOCH))


def test_real_tle_positions_match_skyfield(tle_folder):
    for fname, sel in (("stations", ["ISS (ZARYA)"]),
                       ("resource", ["SENTINEL-2A", "LANDSAT 9"]),
                       ("starlink", ["STARLINK-1008"])):
        c = from_tle_file(tle_folder / f"{fname}.txt",
                          select=lambda tl, sel=sel: filter_tles(tl, names=sel))
        _compare(c)


def test_geodetic_conversion_matches_skyfield():
    pts = np.array([[6878.0, 0.0, 0.0], [1000.0, 2000.0, 6500.0], [-4000.0, 3000.0, -4500.0]])
    lat, lon, h = geodetic_from_itrs(pts)
    for k, p in enumerate(pts):
        from skyfield.units import Distance

        g = wgs84.geographic_position_of(_ItrsPos(Distance(km=p)))
        assert abs(g.latitude.degrees - lat[k]) < 1e-6
        assert abs(g.longitude.degrees - lon[k]) < 1e-6
        assert abs(g.elevation.km - h[k]) < 1e-5


class _ItrsPos:
    """Minimal stand-in exposing ITRS coordinates the way Skyfield's wgs84 reads them."""

    def __init__(self, distance):
        self._d = distance
        self.center = 399

    def frame_xyz(self, frame):
        return self._d


def test_skyfield_never_downloads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = TimeGrid(EPOCH, 600, 60)
    positions_itrs(walker(1, 2, 550, 53, epoch=EPOCH), grid)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad", [dict(step_s=0), dict(duration_s=-1), dict(step_s=100, duration_s=10)]
)
def test_time_grid_with_no_steps_is_an_error(bad):
    args = dict(epoch=EPOCH, duration_s=60, step_s=10)
    with pytest.raises(ValueError, match="time grid"):
        TimeGrid(**{**args, **bad})


def test_bad_epoch_names_input():
    with pytest.raises(ValueError, match="epoch 'yesterday'"):
        TimeGrid("yesterday", 60, 10)
