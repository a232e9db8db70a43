"""Where the ground is land: the GLOBE 1 km land mask averaged to 0.5-degree cells.

The grid (``geodata/land_fraction_0p5deg.npz``, 260 k cells, made by
``scripts/make_land_fraction.py`` from the ``global-land-mask`` package) says which fraction of
each cell is land; lakes count as land, as in GLOBE. It lets a satellite's captures follow real
geography (what it flies over is sea or land) without holding the 1 GB mask in memory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

CELL_DEG = 0.5
SCALE = 250  # stored as uint8: land fraction * SCALE
LAND_FRACTION_FILE = Path(__file__).parent / "geodata" / "land_fraction_0p5deg.npz"

__all__ = ["CELL_DEG", "LAND_FRACTION_FILE", "land_fraction"]


@lru_cache(maxsize=1)
def _grid() -> np.ndarray:
    if not LAND_FRACTION_FILE.is_file():
        raise FileNotFoundError(f"{LAND_FRACTION_FILE} is missing; regenerate it with "
                                "`python scripts/make_land_fraction.py`")
    with np.load(LAND_FRACTION_FILE) as f:
        return f["land"].astype(np.float32) / float(f["scale"])


def land_fraction(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Fraction of land (0..1) in the 0.5-degree cell of each point (any longitude convention)."""
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    if lat.shape != lon.shape:
        raise ValueError(f"latitude shape {lat.shape} and longitude shape {lon.shape} differ")
    if not np.all(np.isfinite(lat) & np.isfinite(lon)) or np.any(np.abs(lat) > 90):
        raise ValueError("latitudes must be finite and within [-90, 90] deg, longitudes finite")
    grid = _grid()
    rows, cols = grid.shape
    r = np.clip(((90.0 - lat) / CELL_DEG).astype(np.int64), 0, rows - 1)
    c = (((lon + 180.0) % 360.0) / CELL_DEG).astype(np.int64) % cols
    return grid[r, c]
