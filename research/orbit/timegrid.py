"""The plan's time grid: an epoch (UTC) and evenly spaced steps, in seconds from the epoch.

Every array in the simulator is indexed by grid step ``k`` at ``t_k = k * step_s``. The state
sampled at ``t_k`` holds until ``t_{k+1}`` (sample-and-hold); the grid covers
``[0, n_steps * step_s)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache, cached_property

import numpy as np
from sgp4.api import jday

DAY_S = 86400.0


@cache
def timescale():
    """Skyfield's timescale from the files shipped inside Skyfield (never downloads)."""
    from skyfield.api import load

    return load.timescale(builtin=True)


def parse_epoch(value: str | datetime) -> datetime:
    """An aware UTC datetime from ISO text (``2024-07-16T12:00:00Z``) or a datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as err:
            raise ValueError(
                f"epoch {value!r} is not an ISO date-time like '2024-07-16T12:00:00Z'"
            ) from err
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


@dataclass(frozen=True)
class TimeGrid:
    """Evenly spaced simulation times.

    Args:
        epoch: start time (UTC), ISO text or datetime.
        duration_s: length of the horizon in seconds (> 0).
        step_s: grid spacing in seconds (> 0, at most ``duration_s``).
    """

    epoch: datetime
    duration_s: float
    step_s: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "epoch", parse_epoch(self.epoch))
        for name in ("duration_s", "step_s"):
            v = getattr(self, name)
            if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    or v <= 0):
                raise ValueError(
                    f"time grid {name} must be a positive number of seconds, got {v!r}"
                )
            object.__setattr__(self, name, float(v))
        if self.step_s > self.duration_s:
            raise ValueError(
                f"time grid has no steps: step_s={self.step_s} exceeds duration_s="
                f"{self.duration_s}"
            )

    @property
    def n_steps(self) -> int:
        return int(math.ceil(self.duration_s / self.step_s - 1e-9))

    @property
    def end_s(self) -> float:
        """End of the horizon: ``n_steps * step_s`` seconds after the epoch."""
        return self.n_steps * self.step_s

    @cached_property
    def times(self) -> np.ndarray:
        """Seconds from the epoch, ``k * step_s`` for each step (float64)."""
        return np.arange(self.n_steps, dtype=np.float64) * self.step_s

    def jd_utc(self, seconds: np.ndarray | float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Whole and fractional UTC Julian dates, the time arguments SGP4 expects.

        Args:
            seconds: offsets from the epoch (defaults to the grid times).
        """
        e = self.epoch
        jd0, fr0 = jday(e.year, e.month, e.day, e.hour, e.minute, e.second + e.microsecond * 1e-6)
        s = self.times if seconds is None else np.asarray(seconds, dtype=np.float64)
        fr = fr0 + s / DAY_S
        whole = np.floor(fr)
        return np.full(s.shape, jd0) + whole, fr - whole

    def skyfield_times(self, seconds: np.ndarray | float | None = None):
        """Skyfield ``Time`` for the grid (or given offsets), using the built-in timescale."""
        ts = timescale()
        e = self.epoch
        s = self.times if seconds is None else np.asarray(seconds, dtype=np.float64)
        return ts.utc(e.year, e.month, e.day, e.hour, e.minute, e.second + e.microsecond * 1e-6 + s)

    def to_dict(self) -> dict:
        return {
            "epoch": self.epoch.isoformat().replace("+00:00", "Z"),
            "duration_s": float(self.duration_s),
            "step_s": float(self.step_s),
        }
