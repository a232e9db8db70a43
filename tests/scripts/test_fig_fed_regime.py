"""The committed regime map with the encoder trained redraws from its JSON and says what the
README says; its Jetson Nano point is the trained comparison's own ratio."""

from __future__ import annotations

import json

import pytest

from research.paths import REPO_ROOT
from tests.scripts.conftest import replot_committed

SPLIT = REPO_ROOT / "results" / "fed_split"
REGIME = REPO_ROOT / "results" / "fed_regime_split"


@pytest.mark.skipif(not (REGIME / "fed_regime.json").is_file(),
                    reason="results/fed_regime_split not committed")
def test_committed_split_regime_replots_and_matches_the_readme(tmp_path, monkeypatch):
    from devices import profiles

    monkeypatch.setattr(profiles, "_DEVICES", dict(profiles._DEVICES))  # what-if ticks stay here
    replot_committed("fig_fed_regime", REGIME, ("fed_regime",), tmp_path)
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    points = {(p["backbone"], float(p["compute_factor"]), p["isls"]): p
              for p in json.loads((REGIME / "fed_regime.json").read_text())["rows"]}
    small, base = points["satvit_small", 1 / 256, "isl"], points["satvit_base", 1 / 256, "isl"]
    assert small["ratio"] < 0.33 and base["ratio"] < 0.33
    assert f"| **{small['ratio']:.2f}** |" in readme and f"| **{base['ratio']:.3f}** |" in readme
    assert all(p["ratio"] is None for k, p in points.items() if k[0] == "satvit_huge")
    summary = json.loads((SPLIT / "fed_time_summary.json").read_text())
    nano = summary["ratios"]["collaborative / onboard"]["ratio"]
    assert f"ratio {nano:.1f}" in readme
    # the map's Nano cell is the trained comparison's own ratio, seed by seed
    seeds = summary["ratios_over_seeds"]["collaborative / onboard"]
    cell = points["satvit_small", 1.0, "isl"]
    assert cell["ratio_seeds"] == pytest.approx(seeds["ratio"], rel=1e-6)
    assert cell["ratio"] == pytest.approx(seeds["ratio_mean"], rel=1e-6)


def test_the_script_hands_every_seed_its_own_partition(tmp_path, monkeypatch):
    """``--seeds 0 1``: the map gets both seeds and a setup per seed with that seed's
    partition, not seed 0's for all."""
    from tests.scripts.conftest import load_script

    script = load_script("fig_fed_regime")
    ledger = tmp_path / "ledger.json"
    ledger.write_text(json.dumps({"rows": [{"run": "collaborative", "seed": s, "round": 1,
                                            "accuracy": 0.5} for s in (0, 1)]}))
    prepared, seen = [], {}

    def fake_prepare(cfg, plan=None, cache_dir=None):
        prepared.append(cfg.data.partition_seed)
        return type("S", (), {"plan": None})()

    def fake_map(cfg, setup, rows, out, **kw):
        seen.update(kw)
        kw["setup_for_seed"](1)
        return []

    monkeypatch.setattr(script, "prepare", fake_prepare)
    monkeypatch.setattr(script, "regime_map", fake_map)
    script.main(["--ledger", str(ledger), "--out", str(tmp_path), "--seeds", "1", "0"])
    assert seen["seeds"] == [0, 1] and prepared == [None, 1]


def test_rounds_come_from_the_named_run_across_ledger_files(tmp_path, monkeypatch):
    """``--run collab_int8_both`` with one ledger file per seed: the map gets that run's rows of
    every file, and a run no file has is named with the runs there are."""
    from tests.scripts.conftest import load_script

    script = load_script("fig_fed_regime")
    files = []
    for seed in (0, 1):
        path = tmp_path / f"ledger_{seed}.json"
        path.write_text(json.dumps({"rows": [
            {"run": run, "seed": seed, "round": 1, "accuracy": 0.5}
            for run in ("collaborative", "collab_int8_both")]}))
        files.append(str(path))
    got = []
    monkeypatch.setattr(script, "prepare", lambda cfg, plan=None, cache_dir=None: None)
    monkeypatch.setattr(script, "regime_map", lambda cfg, setup, rows, out, **kw: got.extend(rows)
                        or [])
    script.main(["--ledger", *files, "--run", "collab_int8_both", "--out", str(tmp_path),
                 "--seeds", "0", "1"])
    assert {(r["run"], r["seed"]) for r in got} == {("collab_int8_both", 0),
                                                    ("collab_int8_both", 1)}
    with pytest.raises(SystemExit):
        script.main(["--ledger", *files, "--run", "int4", "--out", str(tmp_path)])
