"""Scenario YAML -> constellation, stations, grid, links, ISLs; strict about keys.

A typo'd key is an error that names it, suggests the closest valid key and lists them all, so a
scenario never silently runs with a default. See ``experiments/orbit/*.yaml`` for examples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from research.configfile import check_keys as _check_keys
from research.configfile import load_config_files, matches_hint
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


# What each key holds, as type hints checked by the one config checker
# (:func:`research.configfile.matches_hint`: a bool is never a number), numbers also finite.
# Checked before anything is built, so a bad value is an error naming its key, never a TypeError
# from deep inside or a silent 1.0 for true.
TOP_TYPES = {"name": str, "duration_s": float, "step_s": float, "refine_tol_s": float,
             "eclipse": bool}
WALKER_TYPES = {"planes": int, "sats_per_plane": int, "altitude_km": float,
                "inclination_deg": float, "phasing": int, "kind": str, "raan0_deg": float}
TLE_TYPES = {"file": str, "names": list[str], "name_contains": str, "name_regex": str,
             "limit": int, "max_age_days": float | None}
STATION_TYPES = {"default": int, "names": list[str], "min_elevation_deg": float}
SITE_TYPES = {"name": str, "lat_deg": float, "lon_deg": float, "alt_m": float,
              "min_elevation_deg": float}
ISL_TYPES = {"topology": str, "nearest_k": int, "add_nearest": bool,
             "max_range_km": float | None, "grazing_altitude_km": float,
             "polar_cutoff_lat_deg": float | None}
_EXPECTED = {float: "a finite number", int: "an integer", bool: "true or false", str: "text",
             list[str]: "a list of names"}


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def check_types(d: dict, types: dict[str, Any], where: str) -> dict:
    """``d`` unchanged if every key in ``types`` it holds has that type (numbers finite)."""
    for key, hint in types.items():
        if key in d and not (matches_hint(d[key], hint) and _finite(d[key])):
            # the only optional kind is a number or null
            expected = _EXPECTED.get(hint) or f"{_EXPECTED[float]} or null"
            sep = " " if where.endswith(":") else "."  # top-level keys follow the file name
            raise OrbitConfigError(f"{where}{sep}{key} must be {expected}, got {d[key]!r}")
    return d


def parse_config(raw: Any, source: str = "<config>", default_name: str | None = None) -> PlanConfig:
    """Validate a scenario mapping (already loaded from YAML); ``name`` defaults to
    ``default_name``, else the stem of ``source``."""
    top = check_keys(raw, TOP_KEYS, f"orbit config {source} (top level)")
    check_types(top, TOP_TYPES, f"orbit config {source}:")
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
        isl = IslConfig(**check_types(check_keys(top.get("isl"), ISL_KEYS, f"{source}: isl"),
                                      ISL_TYPES, f"{source}: isl"))
        links = {k: _link(v, k, source) for k, v in
                 check_keys(top.get("links"), LINK_KEYS, f"{source}: links").items()}
    except OrbitConfigError:
        raise
    except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
        raise OrbitConfigError(f"orbit config {source}: {err}") from err
    return PlanConfig(name=name, grid=grid, constellation=constellation, stations=stations,
                      isl=isl, links=links, eclipse=top.get("eclipse", True),
                      refine_tol_s=float(top.get("refine_tol_s", 0.1)), raw=dict(top),
                      max_element_age_days=_max_age_days(top["constellation"], source))


def load_config(path: str | Path | Sequence[str | Path], overrides: Sequence[str] = ()) -> PlanConfig:
    """Read and validate a scenario: one YAML file, or several merged in order, then dotted
    ``overrides`` (``"isl.topology=none"``); see :func:`research.configfile.load_yaml`."""
    raw, source, default_name = load_config_files(path, "orbit config", OrbitConfigError, overrides)
    return parse_config(raw, source=source, default_name=default_name)


def _link(v: Any, key: str, source: str) -> LinkModel:
    """``links.<key>``: a preset name or a mapping, errors named by the key."""
    if isinstance(v, str):
        v = {"preset": v}
    if not isinstance(v, dict) or not v:
        raise OrbitConfigError(f"{source}: links.{key} must be a preset name or a mapping of "
                               f"link-budget fields, got {v!r}")
    try:
        return link_from_dict(v)
    except (ValueError, KeyError, TypeError) as err:
        raise OrbitConfigError(f"{source}: links.{key}: {str(err).strip(chr(39))}") from err


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
        w = check_types(check_keys(c["walker"], WALKER_KEYS, f"{where}.walker"), WALKER_TYPES,
                        f"{where}.walker")
        return walker(**w, epoch=grid.epoch)
    t = check_types(check_keys(c["tle"], TLE_KEYS, f"{where}.tle"), TLE_TYPES, f"{where}.tle")
    if "file" not in t:
        raise OrbitConfigError(f"{where}.tle needs 'file' (a name in the shared TLE folder, e.g. "
                               "'starlink', or a path)")
    band = t.get("altitude_km")
    if band is not None and (not isinstance(band, (list, tuple)) or len(band) != 2
                             or not all(matches_hint(b, float) and _finite(b) for b in band)):
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
    value = tle["max_age_days"]  # typed with the tle section (TLE_TYPES)
    if value is not None and not value > 0:
        raise OrbitConfigError(f"orbit config {source}: constellation.tle.max_age_days must be a "
                               f"number of days > 0 or null (no limit), got {value!r}")
    return None if value is None else float(value)


def _stations(spec: Any, source: str) -> list[GroundStation]:
    where = f"{source}: stations"
    s = check_types(check_keys(spec, STATION_KEYS, where), STATION_TYPES, where)
    if not isinstance(s.get("sites") or [], list):
        raise OrbitConfigError(f"{where}.sites must be a list of sites, got {s['sites']!r}")
    mask = float(s.get("min_elevation_deg", 10.0))
    out: list[GroundStation] = []
    if "names" in s:
        try:
            out += default_stations(names=list(s["names"]), min_elevation_deg=mask)
        except (ValueError, KeyError) as err:
            raise OrbitConfigError(f"{where}.names: {str(err).strip(chr(34))}") from err
    elif s.get("default", 0 if "sites" in s else 20):
        try:
            out += default_stations(int(s.get("default", 20)), min_elevation_deg=mask)
        except ValueError as err:
            raise OrbitConfigError(f"{where}.default: {err}") from err
    for i, site in enumerate(s.get("sites") or []):
        d = check_types(check_keys(site, SITE_KEYS, f"{where}.sites[{i}]"), SITE_TYPES,
                        f"{where}.sites[{i}]")
        d.setdefault("min_elevation_deg", mask)
        out.append(GroundStation(**d))
    return check_unique(out)
