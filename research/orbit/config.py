"""Scenario YAML -> constellation, stations, grid, links, ISLs; strict about keys.

A typo'd key is an error that names it, suggests the closest valid key and lists them all, so a
scenario never silently runs with a default. See ``experiments/orbit/*.yaml`` for examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from research.configfile import check_keys as _check_keys
from research.configfile import load_config_files
from research.orbit.constellation import (
    Constellation,
    constellation_preset,
    from_tle_file,
    walker,
)
from research.orbit.isl import IslConfig
from research.orbit.link_budget import LinkModel, link_from_dict
from research.orbit.propagate import DEFAULT_MAX_ELEMENT_AGE_DAYS
from research.orbit.stations import GroundStation, check_unique, default_stations
from research.orbit.timegrid import TimeGrid
from research.orbit.tle import filter_tles

TOP_KEYS = ("name", "epoch", "duration_s", "step_s", "constellation", "stations", "isl", "links",
            "eclipse", "refine_tol_s")
CONSTELLATION_KEYS = ("preset", "walker", "tle")
WALKER_KEYS = ("planes", "sats_per_plane", "altitude_km", "inclination_deg", "phasing", "kind",
               "raan0_deg")
TLE_KEYS = ("file", "names", "name_contains", "name_regex", "altitude_km", "limit", "max_age_days")
STATION_KEYS = ("default", "names", "sites", "min_elevation_deg")
SITE_KEYS = ("name", "lat_deg", "lon_deg", "alt_m", "min_elevation_deg")
ISL_KEYS = ("topology", "nearest_k", "add_nearest", "max_range_km", "grazing_altitude_km",
            "polar_cutoff_lat_deg")
LINK_KEYS = ("downlink", "uplink", "isl")


class OrbitConfigError(ValueError):
    """A scenario file that does not describe a valid scenario."""


def check_keys(d: Any, valid: tuple[str, ...], where: str) -> dict:
    """:func:`research.configfile.check_keys` raising :class:`OrbitConfigError`."""
    return _check_keys(d, valid, where, OrbitConfigError)


@dataclass
class PlanConfig:
    """A parsed scenario."""

    name: str
    grid: TimeGrid
    constellation: Constellation
    stations: list[GroundStation]
    isl: IslConfig
    links: dict[str, LinkModel]
    eclipse: bool = True
    refine_tol_s: float = 0.1
    raw: dict = field(default_factory=dict)
    max_element_age_days: float | None = DEFAULT_MAX_ELEMENT_AGE_DAYS

    def build(self, **kwargs):
        """Compute the :class:`ContactPlan` (keyword arguments go to the builder)."""
        from research.orbit.builder import build_contact_plan

        return build_contact_plan(
            self.constellation, self.stations, self.grid, links=self.links, isl=self.isl,
            eclipse=self.eclipse, refine_tol_s=self.refine_tol_s,
            max_element_age_days=self.max_element_age_days,
            meta={"scenario": self.name, "config": self.raw}, **kwargs,
        )


def parse_config(raw: Any, source: str = "<config>", default_name: str | None = None) -> PlanConfig:
    """Validate a scenario mapping (already loaded from YAML); ``name`` defaults to
    ``default_name``, else the stem of ``source``."""
    top = check_keys(raw, TOP_KEYS, f"orbit config {source} (top level)")
    for req in ("epoch", "duration_s", "step_s", "constellation"):
        if req not in top:
            raise OrbitConfigError(f"orbit config {source}: missing required key {req!r}")
    try:
        grid = TimeGrid(top["epoch"], top["duration_s"], top["step_s"])
    except ValueError as err:
        raise OrbitConfigError(f"orbit config {source}: {err}") from err
    name = str(top.get("name", default_name or Path(source).stem))
    try:
        constellation = _constellation(top["constellation"], grid, source)
        stations = _stations(top.get("stations", {"default": 20}), source)
        isl = IslConfig(**check_keys(top.get("isl"), ISL_KEYS, f"{source}: isl"))
        links = {k: link_from_dict(_link_spec(v, k, source)) for k, v in
                 check_keys(top.get("links"), LINK_KEYS, f"{source}: links").items()}
    except OrbitConfigError:
        raise
    except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
        raise OrbitConfigError(f"orbit config {source}: {err}") from err
    if not isinstance(top.get("eclipse", True), bool):
        raise OrbitConfigError(f"orbit config {source}: eclipse must be true or false")
    return PlanConfig(name=name, grid=grid, constellation=constellation, stations=stations,
                      isl=isl, links=links, eclipse=top.get("eclipse", True),
                      refine_tol_s=float(top.get("refine_tol_s", 0.1)), raw=dict(top),
                      max_element_age_days=_max_age_days(top["constellation"], source))


def load_config(path: str | Path | Sequence[str | Path], overrides: Sequence[str] = ()) -> PlanConfig:
    """Read and validate a scenario: one YAML file, or several merged in order, then dotted
    ``overrides`` (``"isl.topology=none"``); see :func:`research.configfile.load_yaml`."""
    raw, source, default_name = load_config_files(path, "orbit config", OrbitConfigError, overrides)
    return parse_config(raw, source=source, default_name=default_name)


def _link_spec(v: Any, key: str, source: str) -> dict:
    if isinstance(v, str):
        return {"preset": v}
    if not isinstance(v, dict):
        raise OrbitConfigError(f"{source}: links.{key} must be a preset name or a mapping")
    return v


def _constellation(spec: Any, grid: TimeGrid, source: str) -> Constellation:
    where = f"{source}: constellation"
    if isinstance(spec, str):
        spec = {"preset": spec}
    c = check_keys(spec, CONSTELLATION_KEYS, where)
    if len(c) != 1:
        raise OrbitConfigError(f"{where} needs exactly one of {list(CONSTELLATION_KEYS)}, "
                               f"got {sorted(c)}")
    if "preset" in c:
        return constellation_preset(str(c["preset"]), epoch=grid.epoch)
    if "walker" in c:
        w = check_keys(c["walker"], WALKER_KEYS, f"{where}.walker")
        return walker(**w, epoch=grid.epoch)
    t = check_keys(c["tle"], TLE_KEYS, f"{where}.tle")
    if "file" not in t:
        raise OrbitConfigError(f"{where}.tle needs 'file' (a name in the shared TLE folder, e.g. "
                               "'starlink', or a path)")
    band = t.get("altitude_km")
    if band is not None and (not isinstance(band, (list, tuple)) or len(band) != 2):
        raise OrbitConfigError(f"{where}.tle.altitude_km must be [low, high], got {band!r}")

    def select(tles):
        return filter_tles(tles, names=t.get("names"), name_contains=t.get("name_contains"),
                           name_regex=t.get("name_regex"),
                           altitude_km=tuple(band) if band else None, limit=t.get("limit"))

    return from_tle_file(t["file"], select=select)


def _max_age_days(spec: Any, source: str) -> float | None:
    """``constellation.tle.max_age_days``: how far element epochs may lie from the window."""
    tle = spec.get("tle") if isinstance(spec, dict) else None
    if not isinstance(tle, dict) or "max_age_days" not in tle:
        return DEFAULT_MAX_ELEMENT_AGE_DAYS
    value = tle["max_age_days"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise OrbitConfigError(f"orbit config {source}: constellation.tle.max_age_days must be a "
                               f"number of days > 0 or null (no limit), got {value!r}")
    return float(value)


def _stations(spec: Any, source: str) -> list[GroundStation]:
    where = f"{source}: stations"
    s = check_keys(spec, STATION_KEYS, where)
    mask = float(s.get("min_elevation_deg", 10.0))
    out: list[GroundStation] = []
    if "names" in s:
        out += default_stations(names=list(s["names"]), min_elevation_deg=mask)
    elif s.get("default", 0 if "sites" in s else 20):
        out += default_stations(int(s.get("default", 20)), min_elevation_deg=mask)
    for i, site in enumerate(s.get("sites") or []):
        d = check_keys(site, SITE_KEYS, f"{where}.sites[{i}]")
        d.setdefault("min_elevation_deg", mask)
        out.append(GroundStation(**d))
    return check_unique(out)
