"""``scripts/fig_ledger.py --quick`` evaluates both orbits and writes the headline table."""

from __future__ import annotations

import json
import subprocess
import sys

from research.paths import REPO_ROOT


def test_fig_ledger_quick(tmp_path):
    args = [sys.executable, str(REPO_ROOT / "scripts" / "fig_ledger.py"), "--quick",
            "--captures", "6", "--out", str(tmp_path)]
    subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=True)
    data = json.loads((tmp_path / "ledger_headline.json").read_text())
    assert set(data["scenarios"]) == {"demo", "no_isl"}
    for name in ("demo", "no_isl"):
        assert (tmp_path / name / "ledger.png").stat().st_size > 1000
        assert (tmp_path / name / "ledger.pdf").is_file()
    wait = {n: max(s["mean_queue_s"] for s in data["scenarios"][n]) for n in ("demo", "no_isl")}
    assert wait["no_isl"] > wait["demo"]  # without ISLs, answers wait for a contact
    assert "| no_isl | raw |" in (tmp_path / "ledger_headline.md").read_text()
