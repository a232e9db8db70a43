"""One way to write a figure: PNG for reading, PDF for papers, side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def save_figure(fig: Figure, out: str | Path, name: str) -> list[Path]:
    """Write ``<out>/<name>.png`` (150 dpi) and ``<out>/<name>.pdf``, close ``fig``, return both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def load_axes(axes, loads, label: str) -> None:
    """Log x axes ticked at exactly the swept ``loads`` (offered-load figures)."""
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(loads, [f"{x:g}" for x in loads])
        ax.minorticks_off()
        ax.set_xlabel(label)


def log_scale(ax: plt.Axes, axis: str) -> None:
    """Log scale on ``axis`` (``x`` or ``y``) when what is plotted there in data coordinates is
    positive (a tiny test run may plot zeros, or nothing finite; reference lines such as
    ``axvline`` span the axes in axes coordinates and do not count)."""
    values = [v for line in ax.get_lines() if line.get_transform() == ax.transData
              for v in (line.get_ydata() if axis == "y" else line.get_xdata())]
    values += [v for coll in ax.collections for v in coll.get_offsets()[:, 1 if axis == "y" else 0]]
    finite = [float(v) for v in values if np.isfinite(v)]
    if finite and min(finite) > 0:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
