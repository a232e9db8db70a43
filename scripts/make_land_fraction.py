"""Regenerate ``research/orbit/geodata/land_fraction_0p5deg.npz`` from the GLOBE land mask.

The 1 km GLOBE land/sea mask (NOAA, packaged as ``global-land-mask``, a dev dependency) takes
about 1 GB in memory, so the ground-track partition reads this 0.5-degree land fraction instead.

    python scripts/make_land_fraction.py   # ~30 s, ~2 GB peak
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from research.orbit.land import CELL_DEG, LAND_FRACTION_FILE, SCALE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(LAND_FRACTION_FILE))
    args = p.parse_args(argv)
    from global_land_mask import globe  # noqa: PLC0415 - 1 GB on import: only here

    ocean = globe._mask  # (21600, 43200), True = ocean; rows from +90 deg, columns from -180 deg
    block = round(CELL_DEG / abs(float(globe._lat[1] - globe._lat[0])))
    rows, cols = ocean.shape[0] // block, ocean.shape[1] // block
    land = np.empty((rows, cols), dtype=np.uint8)
    for r in range(rows):  # one band at a time: the full mask as floats would need 7 GB
        band = ~ocean[r * block:(r + 1) * block].reshape(block, cols, block)
        land[r] = np.round(band.mean(axis=(0, 2)) * SCALE).astype(np.uint8)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, land=land, cell_deg=np.float64(CELL_DEG), scale=np.int64(SCALE))
    lat = 90 - CELL_DEG * (np.arange(rows) + 0.5)
    w = np.cos(np.radians(lat))[:, None]
    print(f"wrote {out}: {rows}x{cols} cells of {CELL_DEG} deg; land fraction of the Earth's "
          f"surface {float((land / SCALE * w).sum() / (w.sum() * cols)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
