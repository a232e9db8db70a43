"""Capture schedules: which satellite images which scene when, and which real tiles stand for it.

Two ways to say how often satellites capture:

- ``per_orbit``: each capturing satellite takes scenes as a Poisson process of that many per
  orbital period (the load axis of a sweep; the sensor's duty cycle gives the realistic value,
  :meth:`SensorSpec.scenes_per_orbit`);
- ``interval_s`` + ``count``: one capture every ``interval_s`` on a seeded random satellite (the
  earlier fixed workload).

Every capture carries ``sample`` real test-image indices: the scene's accuracy is the fraction of
them the scheme answers right, and its bytes are the mean payload of those tiles times the
scene's tile count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from research.workload.sensors import SensorSpec

__all__ = ["Capture", "orbital_period_s", "schedule_captures"]


@dataclass(frozen=True)
class Capture:
    """One scene taken by one satellite at one time."""

    index: int
    satellite: str
    t_s: float
    tiles: int
    sample: tuple[int, ...]

    @property
    def image(self) -> int:
        """The first sampled test image (the scene's representative tile)."""
        return self.sample[0]


def orbital_period_s(satrecs: Sequence) -> float:
    """Mean orbital period of SGP4 records (``no_kozai`` is the mean motion in rad/min)."""
    if not satrecs:
        raise ValueError("no satellites: cannot take an orbital period")
    return float(np.mean([2 * math.pi / s.no_kozai * 60.0 for s in satrecs]))


def schedule_captures(sensor: SensorSpec, satellites: Sequence[str], horizon_s: float,
                      num_images: int, *, period_s: float, per_orbit: float | None = None,
                      count: int | None = None, interval_s: float | None = None,
                      start_s: float = 0.0, end_s: float | None = None, seed: int = 0,
                      sample_tiles: int = 8) -> list[Capture]:
    """Captures sorted by time (see the module docstring); the same seed gives the same list.

    Poisson captures fall in ``[start_s, end_s)`` (``end_s`` defaults to the horizon; a load
    sweep stops capturing one orbit before the horizon so every scene has time to leave).

    Raises ValueError for a load that is not positive, a schedule that ends beyond the horizon,
    or no satellites or images to draw from.
    """
    if not satellites:
        raise ValueError("captures need at least one satellite")
    if num_images < 1:
        raise ValueError("captures need at least one test image")
    if sample_tiles < 1:
        raise ValueError(f"sample_tiles must be >= 1, got {sample_tiles}")
    if not 0 <= start_s < horizon_s:
        raise ValueError(f"captures start at {start_s} s, outside the horizon [0, {horizon_s}) s")
    end_s = horizon_s if end_s is None else min(end_s, horizon_s)
    if end_s <= start_s:
        raise ValueError(f"captures end at {end_s} s, not after their start at {start_s} s")
    rng = np.random.default_rng(seed)
    times: list[tuple[float, str]] = []
    if per_orbit is not None:
        if not (isinstance(per_orbit, (int, float)) and per_orbit > 0):
            raise ValueError(f"captures per_orbit must be a number > 0, got {per_orbit!r}")
        rate = per_orbit / period_s
        for sat in satellites:
            t = start_s + float(rng.exponential(1 / rate))
            while t < end_s:
                times.append((t, sat))
                t += float(rng.exponential(1 / rate))
        times.sort()
    else:
        if count is None or interval_s is None:
            raise ValueError("captures need per_orbit, or count and interval_s")
        if count < 1 or interval_s < 0:
            raise ValueError(f"captures need count >= 1 and interval_s >= 0, got {count}, "
                             f"{interval_s}")
        last = start_s + (count - 1) * interval_s
        if last >= horizon_s:
            raise ValueError(f"the last capture (t = {last:g} s) is beyond the orbit horizon "
                             f"({horizon_s:g} s); use fewer captures or a shorter interval")
        chosen = rng.integers(0, len(satellites), size=count)
        times = [(start_s + i * interval_s, satellites[chosen[i]]) for i in range(count)]
    k = min(sample_tiles, sensor.tiles_per_scene, num_images)
    order = rng.permutation(num_images)
    out = []
    for i, (t, sat) in enumerate(times):
        start = (i * k) % num_images
        sample = tuple(int(order[(start + j) % num_images]) for j in range(k))
        out.append(Capture(i, sat, float(t), sensor.tiles_per_scene, sample))
    return out
