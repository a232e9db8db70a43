"""Constellations as SGP4 element sets: Walker-delta/star shells, presets, real TLE files.

A Walker shell ``i: T/P/F`` puts ``P`` planes of ``S = T/P`` satellites on circular orbits.
Plane ``p`` has right ascension ``p * 360/P`` (delta) or ``p * 180/P`` (star) and slot ``s``
has mean anomaly ``360 * (s/S + p*F/T)`` (Walker 1984, J. Br. Interplanet. Soc. 37:559).
The shells are built with ``Satrec.sgp4init`` at the plan's epoch (no drag), so the same SGP4
code propagates synthetic and real satellites.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from sgp4.api import WGS72, Satrec

from research.constants import MU_EARTH_WGS72_KM3_S2, R_EARTH_WGS72_KM
from research.orbit.timegrid import parse_epoch
from research.orbit.tle import TLE, load_tle_file, unique_node_ids

_SGP4_EPOCH0 = datetime(1949, 12, 31).toordinal()  # sgp4init counts days from 1949-12-31 0h UT


@dataclass
class Constellation:
    """Satellites with their SGP4 records and (for Walker shells) plane/slot indices.

    Attributes:
        names: unique node ids, ``sat-P{plane:02d}-S{slot:02d}`` for Walker shells.
        satrecs: one ``sgp4.api.Satrec`` per satellite.
        planes: plane index per satellite (-1 when unknown, e.g. TLE satellites).
        slots: slot index within the plane (-1 when unknown).
        kind: ``walker-delta``, ``walker-star`` or ``tle``.
        params: the generator's parameters (kept in the saved plan).
    """

    names: list[str]
    satrecs: list[Satrec]
    planes: np.ndarray
    slots: np.ndarray
    kind: str
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.names) == 0:
            raise ValueError(
                f"empty constellation ({self.kind}, {self.params}): no satellites to simulate"
            )
        if len(self.satrecs) != len(self.names):
            raise ValueError("names and satrecs differ in length")
        if len(set(self.names)) != len(self.names):
            raise ValueError("satellite names must be unique")
        self.planes = np.asarray(self.planes, dtype=np.int32)
        self.slots = np.asarray(self.slots, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def n_planes(self) -> int:
        return int(self.planes.max()) + 1 if (self.planes >= 0).any() else 0

    @property
    def is_walker(self) -> bool:
        return self.kind.startswith("walker")

    def subset(self, idx: Sequence[int]) -> Constellation:
        idx = list(idx)
        return Constellation(
            names=[self.names[i] for i in idx],
            satrecs=[self.satrecs[i] for i in idx],
            planes=self.planes[idx],
            slots=self.slots[idx],
            kind=self.kind,
            params={**self.params, "subset": len(idx)},
        )


def mean_motion_rad_s(altitude_km: float) -> float:
    """Two-body mean motion of a circular orbit at this altitude (WGS72 constants)."""
    a = R_EARTH_WGS72_KM + altitude_km
    return math.sqrt(MU_EARTH_WGS72_KM3_S2 / a**3)


def two_body_period_s(altitude_km: float) -> float:
    """Two-body period ``2*pi*sqrt(a^3/mu)`` of a circular orbit at this altitude."""
    return 2.0 * math.pi / mean_motion_rad_s(altitude_km)


def circular_satrec(
    epoch: datetime,
    altitude_km: float,
    inclination_deg: float,
    raan_deg: float,
    mean_anomaly_deg: float,
    satnum: int = 0,
    eccentricity: float = 1e-6,
) -> Satrec:
    """An SGP4 record for a (near-)circular orbit with no drag, epoch ``epoch``."""
    e = parse_epoch(epoch)
    days = (
        e.toordinal()
        - _SGP4_EPOCH0
        + (e.hour * 3600 + e.minute * 60 + e.second + e.microsecond * 1e-6) / 86400.0
    )
    sat = Satrec()
    sat.sgp4init(
        WGS72,
        "i",
        satnum,
        days,
        0.0,  # bstar: no drag
        0.0,
        0.0,
        eccentricity,
        0.0,  # argument of perigee
        math.radians(inclination_deg),
        math.radians(mean_anomaly_deg % 360.0),
        mean_motion_rad_s(altitude_km) * 60.0,  # rad/min
        math.radians(raan_deg % 360.0),
    )
    return sat


MAX_SATELLITES = 339_999
"""The largest catalogue number SGP4 records take (Alpha-5 'Z9999')."""


def walker(
    planes: int,
    sats_per_plane: int,
    altitude_km: float,
    inclination_deg: float,
    phasing: int = 1,
    kind: str = "delta",
    epoch: str | datetime = "2024-07-16T12:00:00Z",
    raan0_deg: float = 0.0,
) -> Constellation:
    """A Walker shell (``kind='delta'``: RAAN over 360 deg; ``'star'``: over 180 deg).

    Args:
        planes: number of orbital planes ``P`` (>= 1).
        sats_per_plane: satellites per plane ``S`` (>= 1).
        altitude_km: circular altitude above the equatorial radius (> 0).
        inclination_deg: 0-180.
        phasing: Walker phasing factor ``F`` in ``0..P-1`` (ignored for one plane).
        kind: ``delta`` or ``star``.
        epoch: element epoch (use the plan epoch).
        raan0_deg: RAAN of plane 0.
    """
    if kind not in ("delta", "star"):
        raise ValueError(f"walker kind must be 'delta' or 'star', got {kind!r}")
    if int(planes) != planes or planes < 1:
        raise ValueError(f"walker planes must be a positive integer, got {planes!r}")
    if int(sats_per_plane) != sats_per_plane or sats_per_plane < 1:
        raise ValueError(
            f"walker sats_per_plane must be a positive integer, got {sats_per_plane!r}"
        )
    if not altitude_km > 0:
        raise ValueError(
            f"walker altitude_km must be positive (km above the Earth), got {altitude_km}"
        )
    if not 0 <= inclination_deg <= 180:
        raise ValueError(f"walker inclination_deg must be in 0-180, got {inclination_deg}")
    if planes == 1:
        phasing = 0  # a single plane has no inter-plane phasing
    if int(phasing) != phasing or not 0 <= phasing < planes:
        raise ValueError(f"walker phasing must be an integer in 0..planes-1, got {phasing!r}")
    total = planes * sats_per_plane
    if total > MAX_SATELLITES:
        raise ValueError(f"walker planes x sats_per_plane = {total:,} satellites; SGP4 catalogue "
                         f"numbers stop at {MAX_SATELLITES:,}")
    spread = 360.0 if kind == "delta" else 180.0
    names, recs, pl, sl = [], [], [], []
    for p in range(planes):
        raan = raan0_deg + p * spread / planes
        for s in range(sats_per_plane):
            m = 360.0 * (s / sats_per_plane + p * phasing / total)
            recs.append(
                circular_satrec(epoch, altitude_km, inclination_deg, raan, m, satnum=len(recs) + 1)
            )
            names.append(f"sat-P{p:02d}-S{s:02d}")
            pl.append(p)
            sl.append(s)
    params = {
        "kind": kind,
        "planes": planes,
        "sats_per_plane": sats_per_plane,
        "altitude_km": altitude_km,
        "inclination_deg": inclination_deg,
        "phasing": phasing,
        "raan0_deg": raan0_deg,
        "epoch": parse_epoch(epoch).isoformat(),
    }
    return Constellation(names, recs, np.array(pl), np.array(sl), f"walker-{kind}", params)


def walker_delta(planes: int, sats_per_plane: int, altitude_km: float, inclination_deg: float,
                 phasing: int = 1, epoch: str | datetime = "2024-07-16T12:00:00Z") -> Constellation:
    """Walker-delta shell (RAAN spread over 360 degrees), e.g. Starlink shell 1."""
    return walker(planes, sats_per_plane, altitude_km, inclination_deg, phasing, "delta", epoch)


def walker_star(planes: int, sats_per_plane: int, altitude_km: float, inclination_deg: float,
                phasing: int = 1, epoch: str | datetime = "2024-07-16T12:00:00Z") -> Constellation:
    """Walker-star shell (near-polar, RAAN spread over 180 degrees), e.g. Iridium."""
    return walker(planes, sats_per_plane, altitude_km, inclination_deg, phasing, "star", epoch)


# Presets: public figures, rounded. Starlink shell 1: 72 planes x 22 at 550 km, 53 deg (SpaceX
# FCC filing SAT-MOD-20190830-00087). Iridium: 6 x 11 at 780 km, 86.4 deg, star. OneWeb phase 1:
# 18 planes x 36 (648 satellites) at 1200 km, 87.9 deg, star. Phasing F=1 is our choice.
PRESETS: dict[str, dict] = {
    "demo_6x11": dict(planes=6, sats_per_plane=11, altitude_km=550.0, inclination_deg=53.0,
                      phasing=1, kind="delta"),
    "starlink_shell1": dict(planes=72, sats_per_plane=22, altitude_km=550.0, inclination_deg=53.0,
                            phasing=1, kind="delta"),
    "iridium_like": dict(planes=6, sats_per_plane=11, altitude_km=780.0, inclination_deg=86.4,
                         phasing=1, kind="star"),
    "oneweb_like": dict(planes=18, sats_per_plane=36, altitude_km=1200.0, inclination_deg=87.9,
                        phasing=1, kind="star"),
}


def list_presets() -> list[str]:
    return sorted(PRESETS)


def constellation_preset(name: str, epoch: str | datetime = "2024-07-16T12:00:00Z"
                         ) -> Constellation:
    """A named Walker shell; an unknown name lists the valid ones."""
    if name not in PRESETS:
        raise KeyError(f"unknown constellation preset {name!r}; valid presets: {list_presets()}")
    c = walker(**PRESETS[name], epoch=epoch)
    c.params["preset"] = name
    return c


def from_tles(tles: Sequence[TLE], source: str = "") -> Constellation:
    """A constellation from checked element sets (planes unknown: -1)."""
    if len(tles) == 0:
        raise ValueError(
            f"empty constellation: no TLE satellites selected from {source or 'input'}"
        )
    names = unique_node_ids(tles)
    recs = [t.satrec() for t in tles]
    n = len(tles)
    return Constellation(names, recs, -np.ones(n), -np.ones(n), "tle",
                         {"source": source, "count": n})


def from_tle_file(path: str | Path, select: Callable[[list[TLE]], list[TLE]] | None = None
                  ) -> Constellation:
    """Load a TLE file (see :func:`research.orbit.tle.resolve_tle_file`), optionally filtered."""
    from research.orbit.tle import resolve_tle_file

    p = resolve_tle_file(path)
    tles = load_tle_file(p)
    if select is not None:
        tles = select(tles)
    return from_tles(tles, source=p.name)
