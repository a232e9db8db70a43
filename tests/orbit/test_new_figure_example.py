"""Worked example (docs/architecture.md, "figure"): a new figure is one driver and one test.

``contact_time_figure`` below is everything a new figure needs. In a real addition it is its
own file in the package, ``research/orbit/contact_time.py`` (the area whose data it draws),
writing its rows with :func:`research.records.write_rows` (CSV + JSON with the command beside
them) and drawing with :func:`research.figures.save_figure` (PNG + PDF). If it needs a command
line, ``scripts/fig_contact_time.py`` only parses arguments and calls it::

    plan = load_config(args.config).build()
    contact_time_figure(plan, Path(args.out), command=" ".join(sys.argv))

Tests import the driver normally (never the script) and run it on a small plan.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from research.figures import save_figure  # noqa: E402
from research.orbit import ContactPlan  # noqa: E402
from research.records import write_rows  # noqa: E402


# ----------------------------------------------------------------- the new file: the driver
def contact_time_figure(plan: ContactPlan, out: Path, *, command: str) -> list[dict]:
    """Minutes of ground contact per satellite over the plan, one bar per satellite."""
    rows = [{"satellite": s, "contacts": len(c := plan.contacts(s, kind="ground")),
             "contact_min": sum(w.duration_s for w in c) / 60} for s in plan.satellites]
    write_rows(rows, out, "contact_time", meta={"command": command, "plan": plan.meta})
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    ax.bar(range(len(rows)), [r["contact_min"] for r in rows])
    ax.set_xlabel("satellite")
    ax.set_ylabel("ground contact (min)")
    save_figure(fig, out, "contact_time")
    return rows


# ----------------------------------------------------------------- the new test
def test_contact_time_figure_writes_rows_and_both_formats(demo, tmp_path):
    rows = contact_time_figure(demo, tmp_path, command="pytest")
    assert len(rows) == len(demo.satellites)
    total = sum(c.duration_s for c in demo.contacts(kind="ground")) / 60
    assert sum(r["contact_min"] for r in rows) == pytest.approx(total)
    assert any(r["contacts"] > 0 for r in rows)
    for name in ("contact_time.png", "contact_time.pdf", "contact_time.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "contact_time.json").read_text())["command"] == "pytest"
