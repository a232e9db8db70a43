"""``satedge demo`` end to end (the README's main job); slow: it runs the real models."""

from __future__ import annotations

import json

import pytest

from research.cli import main


@pytest.mark.slow
def test_demo_writes_every_result(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--captures", "20", "--loads", "1", "8"]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    names = [s["scheme"] for s in summary["schemes"]]
    assert {"split0-identity", "raw", "onboard"} <= set(names)
    assert any("codec" in n for n in names)
    assert (tmp_path / "eval" / "ledger.png").is_file()
    assert (tmp_path / "fed" / "fed_time.png").is_file()
    sweep = json.loads((tmp_path / "load" / "load_sweep.json").read_text())
    assert {r["per_orbit"] for r in sweep["rows"]} == {1.0, 8.0}
    assert set(sweep["knees"]) == {r["scheme"] for r in sweep["rows"]}
    assert (tmp_path / "load" / "load_sweep.png").is_file()
