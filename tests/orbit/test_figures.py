"""The orbit figure driver and the benchmark script run end to end in their quick modes."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys

import pytest

from research.orbit.figures import orbit_figures
from research.paths import REPO_ROOT


def _run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=True)


def test_fig_orbit_quick(tmp_path):
    written = orbit_figures(tmp_path, quick=True)
    assert sorted(p.name for p in written) == sorted(
        f"{n}.{ext}" for n in ("orbit_ground_tracks", "orbit_contact_gantt", "orbit_isl_snapshot")
        for ext in ("png", "pdf"))
    for name in ("orbit_ground_tracks", "orbit_contact_gantt", "orbit_isl_snapshot"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / f"{name}.pdf").is_file()
    assert (tmp_path / "orbit_contacts.csv").read_text().startswith("station,satellite")
    assert (tmp_path / "orbit_ground_tracks.csv").is_file()
    snap = json.loads((tmp_path / "orbit_isl_snapshot.json").read_text())
    assert snap["edges"] and snap["nodes"]
    assert json.loads((tmp_path / "orbit_figures_summary.json").read_text())["scenario"] == "quick"


def test_fig_orbit_script_parses_its_options(capsys):
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "fig_orbit.py"))
    with pytest.raises(SystemExit) as exit_:
        script["main"](["--help"])
    assert exit_.value.code == 0 and "--quick" in capsys.readouterr().out


def test_bench_orbit_quick(tmp_path):
    out = tmp_path / "bench.json"
    _run([str(REPO_ROOT / "scripts" / "bench_orbit.py"), "--quick", "--out", str(out)], REPO_ROOT)
    r = json.loads(out.read_text())["scenario_a"]
    assert r["plan"]["plan_s"] > 0 and r["propagate_one_call"]["propagate_s"] > 0
    assert r["propagate_one_call"]["accelerated"] is True
