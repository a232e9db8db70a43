"""Orbit figures: ground tracks, a contact Gantt chart per ground station, an ISL snapshot.

Writes PNG + PDF for each figure and the numbers drawn as CSV/JSON. The world map is a plain
latitude/longitude grid (no basemap download). The experiment is
:func:`research.orbit.figures.orbit_figures`; this script parses the arguments.

    python scripts/fig_orbit.py --quick               # 6x11 shell, 6 stations, 2 h: seconds
    python scripts/fig_orbit.py --out outputs/figures # 72x22 shell, 20 stations, 3 h
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from research.orbit.figures import orbit_figures  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small shell, short horizon (seconds)")
    p.add_argument("--out", type=Path, default=Path("outputs") / "figures")
    args = p.parse_args(argv)
    for path in orbit_figures(args.out, quick=args.quick):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
