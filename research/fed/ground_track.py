"""Ground-track partition: each satellite's training images follow what it flew over.

A satellite images the ground below it while the Sun is at least ``MIN_SUN_ELEVATION_DEG`` above
that ground's horizon (optical sensors), every ``step_s`` over the first ``window_s`` of the
scenario (SGP4, the run's own constellation and epoch). Poleward of ``MAX_CAPTURE_LAT_DEG`` it
captures nothing (ice and polar night: EuroSAT has no class for them). Each capture contributes a
class mix (:func:`class_mix`):

* the sea share of the capture's 0.5-degree cell (real geography: the GLOBE land mask,
  :mod:`research.orbit.land`) is ``SeaLake``;
* the land share follows the climate zone of its latitude (``LAND_MIX``, a modelled assumption
  in the spirit of global land-cover shares: forest in the tropics and the boreal belt, open
  vegetation in the subtropical dry belt, crops and pasture in the temperate belt, a small
  constant share of settlements and roads).

A satellite's weight for a class is the sum over its captures; every image of a class is then
dealt to satellites in proportion to those weights (:func:`research.data.partition.weighted_partition`),
so all images are used and a satellite that flew over the Pacific holds mostly ``SeaLake``. A
short window gives strongly skewed clients (one region each); a window of many orbits tends to
IID. Neighbours in a plane fly nearly the same track, so their data are alike: the ring sees
correlated clients, as a real constellation does.
"""

from __future__ import annotations

import numpy as np

from research.data.imagefolder import EUROSAT_CLASSES
from research.orbit import PlanConfig, propagate_teme, sun_position_teme_km
from research.orbit.land import land_fraction
from research.orbit.propagate import EarthRotation, geodetic_from_itrs, teme_to_itrs

MIN_SUN_ELEVATION_DEG = 10.0
MAX_CAPTURE_LAT_DEG = 70.0

# Land class mix per climate zone: (upper |latitude| in deg, {class: share}); shares sum to 1.
LAND_MIX: tuple[tuple[float, dict[str, float]], ...] = (
    (23.5, {"Forest": 0.40, "HerbaceousVegetation": 0.20, "Pasture": 0.12, "PermanentCrop": 0.10,
            "AnnualCrop": 0.08, "River": 0.04, "Residential": 0.03, "Industrial": 0.015,
            "Highway": 0.015}),
    (35.0, {"HerbaceousVegetation": 0.40, "AnnualCrop": 0.15, "PermanentCrop": 0.12,
            "Pasture": 0.12, "Forest": 0.06, "Residential": 0.06, "Industrial": 0.03,
            "Highway": 0.03, "River": 0.03}),
    (55.0, {"AnnualCrop": 0.28, "Forest": 0.22, "Pasture": 0.18, "HerbaceousVegetation": 0.08,
            "Residential": 0.08, "PermanentCrop": 0.06, "Highway": 0.04, "Industrial": 0.03,
            "River": 0.03}),
    (MAX_CAPTURE_LAT_DEG, {"Forest": 0.50, "HerbaceousVegetation": 0.20, "Pasture": 0.08,
                           "River": 0.08, "AnnualCrop": 0.06, "Residential": 0.04,
                           "Industrial": 0.02, "Highway": 0.02}),
)
SEA_CLASS = "SeaLake"

__all__ = ["LAND_MIX", "MAX_CAPTURE_LAT_DEG", "MIN_SUN_ELEVATION_DEG", "captured_class_weights",
           "captures", "class_mix"]


def _zone_table(classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(upper bounds, mixes (zones, classes))`` in the order of ``classes``."""
    bounds = np.array([b for b, _ in LAND_MIX])
    mixes = np.zeros((len(LAND_MIX), len(classes)))
    for z, (_, mix) in enumerate(LAND_MIX):
        for name, share in mix.items():
            mixes[z, classes.index(name)] = share
    return bounds, mixes


def class_mix(lat_deg: np.ndarray, lon_deg: np.ndarray,
              classes: tuple[str, ...] = EUROSAT_CLASSES) -> np.ndarray:
    """Expected class mix of a capture at each point, shape ``(*lat.shape, len(classes))``;
    all zeros poleward of ``MAX_CAPTURE_LAT_DEG``."""
    lat = np.asarray(lat_deg, dtype=np.float64)
    land = land_fraction(lat, lon_deg)[..., None]
    bounds, mixes = _zone_table(classes)
    zone = np.minimum(np.searchsorted(bounds, np.abs(lat), side="right"), len(bounds) - 1)
    sea = np.zeros(len(classes))
    sea[classes.index(SEA_CLASS)] = 1.0
    out = land * mixes[zone] + (1.0 - land) * sea
    return np.where((np.abs(lat) < MAX_CAPTURE_LAT_DEG)[..., None], out, 0.0)


def captures(scenario: PlanConfig, window_s: float, step_s: float | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lat, lon, imaged)``, each ``(satellites, times)``: the sub-satellite points every
    ``step_s`` (default the scenario's step) over the first ``window_s`` of ``scenario``, and
    whether the ground there was imaged (Sun high enough, below ``MAX_CAPTURE_LAT_DEG``)."""
    grid = scenario.grid
    step = grid.step_s if step_s is None else step_s
    if not (np.isfinite(window_s) and 0 < window_s <= grid.duration_s):
        raise ValueError(f"data.capture_window_s must be in (0, {grid.duration_s:g}] s (the "
                         f"scenario {scenario.name!r}), got {window_s}")
    if not (np.isfinite(step) and 0 < step <= window_s):
        raise ValueError(f"capture step must be in (0, {window_s:g}] s, got {step}")
    seconds = np.arange(0.0, window_s, step)
    jd, fr = grid.jd_utc(seconds)
    r_teme, _, _ = propagate_teme(scenario.constellation, jd, fr)  # (N, T, 3) km
    lat, lon, _ = geodetic_from_itrs(teme_to_itrs(r_teme, EarthRotation.for_grid(grid, seconds)))
    sun = sun_position_teme_km(jd + fr)  # (T, 3)
    up = r_teme / np.linalg.norm(r_teme, axis=-1, keepdims=True)
    sun_elev_sin = np.einsum("ntk,tk->nt", up, sun / np.linalg.norm(sun, axis=-1, keepdims=True))
    imaged = (sun_elev_sin >= np.sin(np.radians(MIN_SUN_ELEVATION_DEG))) & (
        np.abs(lat) < MAX_CAPTURE_LAT_DEG)
    return lat, lon, imaged


def captured_class_weights(scenario: PlanConfig, window_s: float, step_s: float | None = None,
                           classes: tuple[str, ...] = EUROSAT_CLASSES
                           ) -> tuple[list[str], np.ndarray]:
    """``(satellites, weights (satellites, classes))``: how much of each class each satellite
    imaged (:func:`captures`)."""
    lat, lon, imaged = captures(scenario, window_s, step_s)
    weights = (class_mix(lat, lon, classes) * imaged[..., None]).sum(axis=1)
    return list(scenario.constellation.names), weights
