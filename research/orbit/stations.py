"""Ground stations: named WGS84 sites with an elevation mask, and a default set of real sites.

Coordinates of the default sites are public values rounded to about 0.01 degree (operators'
station pages and Wikipedia; KSAT, SSC, ESA ESTRACK, NASA NEN, DLR, ISRO, CONAE, SANSA,
Geoscience Australia, USGS). They are good to a few hundred metres, plenty for pass geometry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from research.constants import R_EARTH_KM, WGS84_F


@dataclass(frozen=True)
class GroundStation:
    """A ground site.

    Args:
        name: short name without spaces; the node id is ``gs-<name>``.
        lat_deg: geodetic latitude, -90..90.
        lon_deg: longitude, -180..360 (east positive).
        alt_m: height above the WGS84 ellipsoid in metres.
        min_elevation_deg: elevation mask, 0..90 degrees.
    """

    name: str
    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0
    min_elevation_deg: float = 10.0

    def __post_init__(self) -> None:
        if not self.name or not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.name):
            raise ValueError(
                f"ground station name {self.name!r} must be non-empty letters, digits, _ . - "
                "(no spaces)"
            )
        if not -90 <= self.lat_deg <= 90:
            raise ValueError(f"ground station {self.name}: lat_deg {self.lat_deg} not in -90..90")
        if not -180 <= self.lon_deg <= 360:
            raise ValueError(f"ground station {self.name}: lon_deg {self.lon_deg} not in -180..360")
        if not 0 <= self.min_elevation_deg <= 90:
            raise ValueError(
                f"ground station {self.name}: min_elevation_deg {self.min_elevation_deg} is "
                "outside 0-90 degrees"
            )
        if not -500 <= self.alt_m <= 9000:
            raise ValueError(f"ground station {self.name}: alt_m {self.alt_m} not in -500..9000")

    @property
    def node_id(self) -> str:
        return f"gs-{self.name}"

    def to_dict(self) -> dict:
        return asdict(self)


# name, lat, lon, alt (m): real Earth-observation / TT&C ground-station sites.
_DEFAULT_SITES: tuple[tuple[str, float, float, float], ...] = (
    ("Svalbard", 78.230, 15.408, 500.0),  # KSAT SvalSat
    ("Troll", -72.012, 2.535, 1270.0),  # KSAT TrollSat, Antarctica
    ("Kiruna", 67.857, 20.964, 400.0),  # SSC Esrange / ESA Kiruna
    ("Fairbanks", 64.972, -147.513, 300.0),  # NOAA Fairbanks CDAS (Gilmore Creek)
    ("Inuvik", 68.318, -133.549, 100.0),  # Inuvik Satellite Station Facility
    ("Matera", 40.650, 16.704, 540.0),  # ASI Centro di Geodesia Spaziale
    ("Maspalomas", 27.764, -15.634, 200.0),  # INTA / ESA Maspalomas
    ("Kourou", 5.251, -52.805, 15.0),  # ESA Kourou
    ("Hartebeesthoek", -25.887, 27.707, 1400.0),  # SANSA
    ("Santiago", -33.151, -70.668, 730.0),  # SSC Santiago
    ("PuntaArenas", -52.938, -70.857, 30.0),  # KSAT Punta Arenas
    ("SouthPoint", 19.014, -155.663, 370.0),  # SSC South Point, Hawaii
    ("Wallops", 37.940, -75.466, 10.0),  # NASA Wallops
    ("McMurdo", -77.839, 166.667, 150.0),  # NASA McMurdo ground station
    ("NewNorcia", -31.048, 116.192, 250.0),  # ESA New Norcia
    ("Awarua", -46.529, 168.381, 10.0),  # KSAT Awarua, New Zealand
    ("Bangalore", 13.034, 77.512, 900.0),  # ISRO ISTRAC
    ("Weilheim", 47.881, 11.078, 600.0),  # DLR Weilheim
    ("AliceSprings", -23.759, 133.882, 600.0),  # Geoscience Australia
    ("SiouxFalls", 43.736, -96.622, 500.0),  # USGS EROS
    ("Neustrelitz", 53.330, 13.070, 60.0),  # DLR Neustrelitz
    ("Singapore", 1.396, 103.835, 20.0),  # KSAT Singapore
    ("Cordoba", -31.524, -64.463, 730.0),  # CONAE Teofilo Tabanera
    ("Okinawa", 26.498, 127.855, 50.0),  # JAXA Okinawa
)


def list_default_sites() -> list[str]:
    return [s[0] for s in _DEFAULT_SITES]


def default_stations(n: int | None = 20, names: Sequence[str] | None = None,
                     min_elevation_deg: float = 10.0) -> list[GroundStation]:
    """Real ground-station sites: the first ``n`` of the list, or those named.

    Args:
        n: how many (the first 20 by default; ``None`` for all 24).
        names: pick sites by name instead (unknown names list the valid ones).
        min_elevation_deg: elevation mask applied to every site.
    """
    table = {s[0]: s for s in _DEFAULT_SITES}
    if names is not None:
        unknown = [x for x in names if x not in table]
        if unknown:
            raise KeyError(f"unknown ground-station site(s) {unknown}; valid: {list(table)}")
        rows = [table[x] for x in names]
    else:
        if n is not None and not 0 < n <= len(_DEFAULT_SITES):
            raise ValueError(f"n must be in 1..{len(_DEFAULT_SITES)}, got {n}")
        rows = list(_DEFAULT_SITES[: n or len(_DEFAULT_SITES)])
    return [GroundStation(r[0], r[1], r[2], r[3], min_elevation_deg) for r in rows]


def check_unique(stations: Iterable[GroundStation]) -> list[GroundStation]:
    out = list(stations)
    names = [s.name for s in out]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise ValueError(f"duplicate ground-station names: {dup}")
    return out


def station_frames(stations: Sequence[GroundStation]) -> tuple[np.ndarray, np.ndarray]:
    """ITRS positions (km) and local geodetic up unit vectors, each ``(S, 3)``."""
    lat = np.radians([s.lat_deg for s in stations])
    lon = np.radians([s.lon_deg for s in stations])
    h = np.array([s.alt_m for s in stations]) / 1000.0
    e2 = WGS84_F * (2 - WGS84_F)
    n = R_EARTH_KM / np.sqrt(1 - e2 * np.sin(lat) ** 2)
    pos = np.stack(
        [
            (n + h) * np.cos(lat) * np.cos(lon),
            (n + h) * np.cos(lat) * np.sin(lon),
            (n * (1 - e2) + h) * np.sin(lat),
        ],
        axis=-1,
    )
    up = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)
    return pos, up


def elevation_deg(r_itrs_km: np.ndarray, station: GroundStation) -> np.ndarray:
    """Elevation of ITRS points ``(..., 3)`` seen from a station, degrees."""
    pos, up = station_frames([station])
    d = r_itrs_km - pos[0]
    return np.degrees(np.arcsin(np.clip(d @ up[0] / np.linalg.norm(d, axis=-1), -1, 1)))


def sin_mask(stations: Sequence[GroundStation]) -> np.ndarray:
    return np.array([math.sin(math.radians(s.min_elevation_deg)) for s in stations])
