"""Orbital link simulator: constellations, ground stations, links and the ContactPlan.

No Lightning and no torch here: numpy, sgp4 (vectorised C++), Skyfield (frames, offline), yaml.

Typical use::

    from research.orbit import constellation_preset, default_stations, TimeGrid
    from research.orbit import build_contact_plan, ContactPlan

    plan = build_contact_plan(constellation_preset("demo_6x11"), default_stations(6),
                              TimeGrid("2024-07-16T12:00:00Z", 6 * 3600, 10))
    t_arrival, path, energy_j = plan.transfer("sat-P00-S00", "gs-Matera", 1e6, t0=0.0)
    plan.save("outputs/orbit/demo.npz"); plan = ContactPlan.load("outputs/orbit/demo.npz")
"""

from research.orbit.builder import BuildStats, build_contact_plan, default_links
from research.orbit.config import OrbitConfigError, PlanConfig, load_config, parse_config
from research.orbit.constellation import (
    PRESETS,
    Constellation,
    constellation_preset,
    from_tle_file,
    from_tles,
    list_presets,
    two_body_period_s,
    walker,
    walker_delta,
    walker_star,
)
from research.orbit.contact_plan import Contact, ContactPlan
from research.orbit.eclipse import sun_position_teme_km, sunlit_mask
from research.orbit.isl import IslConfig
from research.orbit.link_budget import (
    DVBS2_MODCODS,
    LINK_PRESETS,
    LinkModel,
    OpticalLink,
    RFLink,
    dvbs2_efficiency,
    fspl_db,
    link_from_dict,
    list_link_presets,
)
from research.orbit.network import CAPACITY_MODES, NetworkResources, NetworkState
from research.orbit.occupancy import Occupancy
from research.orbit.propagate import (
    EarthRotation,
    check_accelerated,
    positions_itrs,
    propagate_teme,
    subsatellite_points,
    teme_to_gcrs,
)
from research.orbit.routing import Hop, TransferResult, UnreachableError
from research.orbit.stations import GroundStation, default_stations, list_default_sites
from research.orbit.timegrid import TimeGrid
from research.orbit.tle import TLE, TLEError, filter_tles, load_tle_file, parse_tle_text

__all__ = [
    "BuildStats", "build_contact_plan", "default_links",
    "OrbitConfigError", "PlanConfig", "load_config", "parse_config",
    "PRESETS", "Constellation", "constellation_preset", "from_tle_file", "from_tles",
    "list_presets", "two_body_period_s", "walker", "walker_delta", "walker_star",
    "Contact", "ContactPlan",
    "sun_position_teme_km", "sunlit_mask",
    "IslConfig",
    "LINK_PRESETS", "DVBS2_MODCODS", "LinkModel", "OpticalLink", "RFLink", "dvbs2_efficiency",
    "fspl_db", "link_from_dict", "list_link_presets",
    "EarthRotation", "check_accelerated", "positions_itrs", "propagate_teme",
    "subsatellite_points", "teme_to_gcrs",
    "CAPACITY_MODES", "NetworkResources", "NetworkState", "Occupancy",
    "Hop", "TransferResult", "UnreachableError",
    "GroundStation", "default_stations", "list_default_sites",
    "TimeGrid",
    "TLE", "TLEError", "filter_tles", "load_tle_file", "parse_tle_text",
]
