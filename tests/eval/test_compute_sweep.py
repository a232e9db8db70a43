"""The policy sweep over on-board compute: options that compute on board get faster with it."""

from __future__ import annotations

import copy
import json

import pytest

from research.eval.compute_sweep import compute_comparisons, compute_sweep, write_compute_sweep
from research.eval.scenario import ScenarioError, parse_scenario
from tests.scripts.conftest import load_script


@pytest.fixture(autouse=True)
def _what_if_devices_stay_here(monkeypatch):
    """What-if profiles register globally; keep them out of the other test modules."""
    from devices import profiles

    monkeypatch.setattr(profiles, "_DEVICES", dict(profiles._DEVICES))


def test_compute_sweep_scales_only_the_on_board_seconds(raw_scenario, tmp_path):
    raw = copy.deepcopy(raw_scenario)
    raw["captures"] = {"sensor": "demo_tile", "per_orbit": 2, "start_s": 0, "seed": 0}
    raw["calibration"] = {"limit": 20}
    scenario = parse_scenario(raw, "tiny.yaml")
    rows, meta = compute_sweep(scenario, 2, [0.0], [1, 1e4], progress=False)
    by = {(r["compute_factor"], r["policy"]): r for r in rows}
    nano = by[1.0, "onboard"]["satellite_flops"]
    assert by[1e4, "onboard"]["satellite_flops"] == pytest.approx(1e4 * nano)
    assert by[1e4, "onboard"]["satellite_device"] == "jetson_nano_x10000"
    # the whole model on board costs less on-board energy (same power, less time; its latency
    # here is the wait for a contact); the raw image computes nothing on board
    assert by[1e4, "onboard"]["energy_onboard_j"] < by[1.0, "onboard"]["energy_onboard_j"]
    for key in ("energy_onboard_j", "latency_p50_all_s"):
        assert by[1e4, "raw"][key] == pytest.approx(by[1.0, "raw"][key])
    assert all(r["isolation_violations"] == 0 for r in rows)
    comps = meta["comparisons"]
    assert [c["compute_factor"] for c in comps] == [1.0, 1e4]
    for c in comps:  # floor 0: every option qualifies, and none beats the bound
        here = [r for r in rows if r["compute_factor"] == c["compute_factor"]
                and r["kind"] == "fixed"]
        assert c["best_fixed_p95_s"] == min(r["latency_p95_all_s"] for r in here)
        assert c["greedy_p95_s"] >= c["isolation_bound_p95_s"] - 1e-6
    paths = write_compute_sweep(rows, meta, tmp_path)
    assert {"csv", "json", "png", "pdf"} <= set(paths)
    # the script redraws from the JSON alone, recomputing the comparisons
    load_script("fig_policy_compute").main(["--replot", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "policy_compute.json").read_text())
    assert record["comparisons"] == json.loads(json.dumps(compute_comparisons(rows)))
    with pytest.raises(ScenarioError, match=r"compute factors must be finite numbers > 0"):
        compute_sweep(scenario, 2, [0.0], [1, 0], progress=False)
    with pytest.raises(ScenarioError, match=r"compute factors must be finite numbers > 0"):
        compute_sweep(scenario, 2, [0.0], [True], progress=False)
