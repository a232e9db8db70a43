"""Variants of a federated run's orbit scenario, for sweeps that change one thing about it.

Each takes the scenario as a fed config holds it (an orbit YAML path, its ``_base_`` files
resolved, or an inline mapping) and returns a new inline mapping with the stations, links and
everything else kept: a Walker shell of another size, another plan length, no ISLs.
"""

from __future__ import annotations

from research.configfile import load_yaml
from research.fed.config import FedConfig

__all__ = ["parse_shells", "walker_scenario", "with_duration", "without_isls"]


def _raw(scenario: str | dict) -> dict:
    return dict(load_yaml(scenario, "orbit scenario") if isinstance(scenario, str) else scenario)


def parse_shells(specs: list[str]) -> list[tuple[int, int]]:
    """``["6x11", "12x22"]`` -> ``[(6, 11), (12, 22)]`` (Walker shells as PLANESxSATS).

    Raises:
        ValueError: Naming the shells and the form expected.
    """
    try:
        shells = [(int(a), int(b)) for a, b in (s.lower().split("x") for s in specs)]
    except ValueError:
        raise ValueError(f"shells are PLANESxSATS (e.g. 12x11), got {specs}") from None
    if any(p < 1 or n < 1 for p, n in shells):
        raise ValueError(f"shells need at least 1 plane and 1 satellite per plane, got {specs}")
    return shells


def walker_scenario(base: FedConfig, planes: int, per_plane: int,
                    duration_s: float = 86400.0) -> dict:
    """``base``'s orbit scenario (stations, links, ISLs, altitude and inclination kept) with a
    ``planes x per_plane`` Walker-delta shell instead, over ``duration_s`` (a day covers the
    collaborative scheme's first round, which dominates its time)."""
    raw = _raw(base.scenario)
    raw.update({"name": f"walker_{planes}x{per_plane}", "duration_s": duration_s,
                "constellation": {"walker": {"planes": planes, "sats_per_plane": per_plane,
                                             "altitude_km": 550.0, "inclination_deg": 53.0,
                                             "phasing": 1, "kind": "delta"}}})
    return raw


def with_duration(base: FedConfig, duration_s: float) -> dict:
    """``base``'s orbit scenario over ``duration_s`` instead (a star with SecAgg needs about
    three times the plain star's days for the same rounds)."""
    raw = _raw(base.scenario)
    raw.update({"name": f"{raw.get('name', 'scenario')}_{duration_s / 86400:g}d",
                "duration_s": duration_s})
    return raw


def without_isls(scenario: str | dict) -> dict:
    """The orbit scenario ``scenario`` (a YAML path or mapping) with its ISLs left out."""
    raw = _raw(scenario)
    return {**raw, "name": f"{raw.get('name', 'scenario')}_no_isl", "isl": {"topology": "none"}}
