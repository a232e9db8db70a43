"""Shared fixtures: a small plan built once per session, and the shared TLE folder."""

from __future__ import annotations

import pytest

from research.orbit import (
    IslConfig,
    TimeGrid,
    build_contact_plan,
    constellation_preset,
    default_stations,
)
from research.paths import tle_dir

EPOCH = "2024-07-16T12:00:00Z"
SITES = ["Kiruna", "Matera", "Maspalomas", "Hartebeesthoek", "Santiago", "SouthPoint"]


@pytest.fixture(scope="session")
def tle_folder():
    d = tle_dir()
    if not (d / "starlink.txt").is_file():
        pytest.skip(f"shared TLE folder not present at {d}")
    return d


@pytest.fixture(scope="session")
def demo():
    """6x11 shell, 6 stations, 3 h at 10 s, +Grid optical ISLs, eclipse on."""
    c = constellation_preset("demo_6x11", epoch=EPOCH)
    st = default_stations(names=SITES)
    grid = TimeGrid(EPOCH, 3 * 3600, 10)
    return build_contact_plan(c, st, grid, isl=IslConfig(topology="grid"), eclipse=True)


@pytest.fixture(scope="session")
def demo_no_isl():
    c = constellation_preset("demo_6x11", epoch=EPOCH)
    st = default_stations(names=SITES)
    grid = TimeGrid(EPOCH, 6 * 3600, 10)
    return build_contact_plan(c, st, grid, isl=IslConfig(topology="none"), eclipse=False)
