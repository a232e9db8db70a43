"""Sensors: what one capture weighs, from the instrument's public figures.

A capture is a scene ``swath_km`` wide and ``scene_length_km`` long, sampled at ``gsd_m`` in
``bands`` bands of ``bits_per_sample``. The model sees it as ``tile_px`` x ``tile_px`` tiles
(64 x 64 for EuroSAT-sized inputs): the bytes a scheme sends for a scene are its bytes per tile
times the number of tiles, while the accuracy of a tile still comes from a real test image.
``duty_cycle`` is the fraction of an orbit the instrument images (what sets the realistic load).

Presets are named after the instrument class they resemble; their figures come from the public
sources quoted in ``source``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from research.registry import Registry

__all__ = ["SensorSpec", "get_sensor", "list_sensors", "register_sensor"]

GROUND_SPEED_KM_S = 7.0
"""Ground-track speed of a LEO satellite at 500-800 km (7.5 km/s orbital, ~7 km/s at ground)."""


@dataclass(frozen=True)
class SensorSpec:
    """An imaging instrument and how it is operated (see the module docstring)."""

    name: str
    swath_km: float
    scene_length_km: float
    gsd_m: float
    bands: int
    bits_per_sample: int
    duty_cycle: float
    source: str
    tile_px: int = 64

    def __post_init__(self) -> None:
        for key in ("swath_km", "scene_length_km", "gsd_m"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"sensor {self.name!r}: {key} must be a number > 0, got {v!r}")
        for key in ("bands", "bits_per_sample", "tile_px"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"sensor {self.name!r}: {key} must be an integer >= 1, "
                                 f"got {v!r}")
        if not 0 < self.duty_cycle <= 1:
            raise ValueError(f"sensor {self.name!r}: duty_cycle must be in (0, 1], got "
                             f"{self.duty_cycle!r}")

    @property
    def pixels_per_scene(self) -> float:
        """Ground samples in one scene (per band)."""
        return (self.swath_km * 1e3 / self.gsd_m) * (self.scene_length_km * 1e3 / self.gsd_m)

    @property
    def tiles_per_scene(self) -> int:
        """Model tiles (``tile_px`` squared) covering one scene, at least one."""
        return max(1, math.ceil(self.pixels_per_scene / self.tile_px ** 2))

    @property
    def raw_scene_bytes(self) -> float:
        """The instrument's uncompressed scene: every band at ``bits_per_sample``."""
        return self.pixels_per_scene * self.bands * self.bits_per_sample / 8

    def scenes_per_orbit(self, period_s: float) -> float:
        """Scenes the instrument takes in one orbit at its duty cycle."""
        return self.duty_cycle * period_s * GROUND_SPEED_KM_S / self.scene_length_km

    def to_dict(self) -> dict:
        return {**asdict(self), "tiles_per_scene": self.tiles_per_scene,
                "raw_scene_bytes": self.raw_scene_bytes}


_SENSORS: Registry[SensorSpec] = Registry("sensor preset")


def register_sensor(factory: Callable[[], SensorSpec]) -> Callable[[], SensorSpec]:
    """Decorator: register the sensor a zero-argument function returns, under its name."""
    spec = factory()
    _SENSORS.register(spec.name)(spec)
    return factory


def list_sensors() -> list[str]:
    """Names of every registered sensor, sorted."""
    return _SENSORS.names()


def get_sensor(name: str | SensorSpec) -> SensorSpec:
    """A sensor by name (a :class:`SensorSpec` passes through)."""
    return name if isinstance(name, SensorSpec) else _SENSORS.get(name)


@register_sensor
def sentinel2_msi() -> SensorSpec:
    """A Sentinel-2-like multispectral imager (the model sees its 10 m bands as 64 px tiles)."""
    return SensorSpec(
        name="sentinel2_msi", swath_km=290.0, scene_length_km=500.0, gsd_m=10.0, bands=13,
        bits_per_sample=12, duty_cycle=0.32,
        source=("ESA Sentinel-2 User Handbook (2015) and MSI technical guide: 290 km swath, "
                "13 bands at 10/20/60 m, 12-bit quantisation, up to 32 min of imaging per "
                "~100 min orbit (duty cycle 0.32). A capture is a 500 km segment of a datatake "
                "(five 100 km L1C tiles long), moved as one flow. All bands counted at 10 m "
                "here, an upper bound on the raw volume; the model sees RGB tiles."),
    )


@register_sensor
def dove_cubesat() -> SensorSpec:
    """A Dove-like 3U cubesat imager (PlanetScope class)."""
    return SensorSpec(
        name="dove_cubesat", swath_km=24.0, scene_length_km=16.0, gsd_m=3.7, bands=4,
        bits_per_sample=12, duty_cycle=0.25,
        source=("Planet, 'Planet Imagery Product Specifications' (2022): PlanetScope Dove "
                "classic frames about 24 km x 16 km at 3.7 m GSD, 4 bands (RGB + NIR), 12-bit; "
                "duty cycle 0.25 assumed (daylit land)."),
    )


@register_sensor
def demo_tile() -> SensorSpec:
    """The earlier tiny workload: one 64 x 64 RGB tile per capture (kept to reproduce it)."""
    return SensorSpec(
        name="demo_tile", swath_km=0.64, scene_length_km=0.64, gsd_m=10.0, bands=3,
        bits_per_sample=8, duty_cycle=0.01,
        source="One EuroSAT-sized tile (64 x 64 px at 10 m, RGB uint8): the ledger's earlier "
               "workload, far below any real instrument's volume.",
    )
