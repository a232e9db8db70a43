"""The figure and benchmark scripts run end to end in their quick modes."""

from __future__ import annotations

import json
import subprocess
import sys

from research.paths import REPO_ROOT


def _run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=True)


def test_fig_orbit_quick(tmp_path):
    _run([str(REPO_ROOT / "scripts" / "fig_orbit.py"), "--quick", "--out", str(tmp_path)],
         REPO_ROOT)
    for name in ("orbit_ground_tracks", "orbit_contact_gantt", "orbit_isl_snapshot"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / f"{name}.pdf").is_file()
    assert (tmp_path / "orbit_contacts.csv").read_text().startswith("station,satellite")
    assert (tmp_path / "orbit_ground_tracks.csv").is_file()
    snap = json.loads((tmp_path / "orbit_isl_snapshot.json").read_text())
    assert snap["edges"] and snap["nodes"]


def test_bench_orbit_quick(tmp_path):
    out = tmp_path / "bench.json"
    _run([str(REPO_ROOT / "scripts" / "bench_orbit.py"), "--quick", "--out", str(out)], REPO_ROOT)
    r = json.loads(out.read_text())["scenario_a"]
    assert r["plan"]["plan_s"] > 0 and r["propagate_one_call"]["propagate_s"] > 0
    assert r["propagate_one_call"]["accelerated"] is True
