"""Scenario YAML validation and the ``satedge orbit plan`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from research.configfile import load_yaml
from research.orbit import ContactPlan, OrbitConfigError, load_config, parse_config
from research.orbit.cli import main
from research.paths import REPO_ROOT

EXPERIMENTS = sorted((REPO_ROOT / "experiments" / "orbit").glob("*.yaml"))
TINY = {
    "name": "tiny",
    "epoch": "2024-07-16T12:00:00Z",
    "duration_s": 1800,
    "step_s": 10,
    "constellation": {"walker": {"planes": 2, "sats_per_plane": 4, "altitude_km": 550,
                                 "inclination_deg": 53}},
    "stations": {"names": ["Matera", "Santiago"], "min_elevation_deg": 10},
    "isl": {"topology": "grid"},
    "links": {"downlink": "x_band_eo", "isl": {"preset": "rf_isl", "tx_power_w": 5.0}},
}


def test_experiment_files_parse():
    assert {p.stem for p in EXPERIMENTS} >= {"demo_6x11", "starlink_72x22"}
    for p in EXPERIMENTS:
        if "tle" in load_yaml(p, "orbit config")["constellation"]:  # _base_ files merged
            continue  # needs the shared TLE folder; covered below
        cfg = load_config(p)
        assert len(cfg.constellation) > 0 and cfg.grid.n_steps > 0


def test_tle_experiments_parse(tle_folder):
    for p in EXPERIMENTS:
        cfg = load_config(p)
        assert len(cfg.constellation) > 0


def _bad(update: dict, match: str, where=None):
    raw = json.loads(json.dumps(TINY))
    (raw if where is None else raw[where]).update(update)
    with pytest.raises(OrbitConfigError, match=match):
        parse_config(raw, "tiny.yaml")


def test_typo_keys_are_named_with_valid_keys():
    _bad({"stepp_s": 10}, r"unknown key 'stepp_s'.*did you mean 'step_s'.*valid keys: \['name'")
    _bad({"topolgy": "grid"}, r"unknown key 'topolgy' in tiny.yaml: isl.*'topology'", "isl")
    raw = json.loads(json.dumps(TINY))
    raw["constellation"]["walker"]["altitude"] = 550
    with pytest.raises(OrbitConfigError, match=r"'altitude'.*constellation.walker.*altitude_km"):
        parse_config(raw, "tiny.yaml")


def test_bad_values_are_clear_errors():
    raw = dict(TINY, constellation={"preset": "starlink"})
    with pytest.raises(OrbitConfigError,
                       match=r"unknown constellation preset 'starlink'.*demo_6x11"):
        parse_config(raw, "tiny.yaml")
    _bad({"preset": "demo_6x11"}, "needs exactly one of", "constellation")
    raw = json.loads(json.dumps(TINY))
    raw["constellation"]["walker"]["altitude_km"] = -5
    with pytest.raises(OrbitConfigError, match="altitude_km must be positive"):
        parse_config(raw, "tiny.yaml")
    _bad({"min_elevation_deg": 95}, "min_elevation_deg 95.0 is outside 0-90", "stations")
    _bad({"step_s": 3600}, "time grid has no steps")
    _bad({"step_s": 0}, "step_s must be a positive number")
    raw = json.loads(json.dumps(TINY))
    del raw["epoch"]
    with pytest.raises(OrbitConfigError, match="missing required key 'epoch'"):
        parse_config(raw, "tiny.yaml")
    raw = json.loads(json.dumps(TINY))
    raw["links"]["downlink"] = {"preset": "x_band_eo", "tx_powr_w": 3}
    with pytest.raises(OrbitConfigError, match="tx_powr_w"):
        parse_config(raw, "tiny.yaml")


def test_empty_tle_selection_is_an_error(tle_folder):
    raw = dict(TINY, constellation={"tle": {"file": "starlink", "name_contains": "NO-SUCH-SAT"}})
    with pytest.raises(OrbitConfigError, match="empty constellation.*starlink.txt"):
        parse_config(raw, "tiny.yaml")


def test_cli_writes_plan_and_summary(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    assert main(["plan", "--config", str(cfg), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "tiny_summary.json").read_text())
    for key in ("satellites", "stations", "contacts", "mean_contact_duration_s",
                "mean_downlink_rate_bps"):
        assert key in summary
    assert summary["satellites"] == 8 and summary["stations"] == 2
    plan = ContactPlan.load(Path(summary["plan_file"]))
    assert plan.models["isl"].tx_power_w == 5.0
    assert "contact plan: tiny" in capsys.readouterr().out


def test_cli_bad_config_exit_code(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(dict(TINY, durration_s=5)))
    assert main(["plan", "--config", str(cfg), "--out", str(tmp_path)]) == 2
    assert "durration_s" in capsys.readouterr().err
    assert main(["plan", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_cli_merges_configs_in_order_then_overrides(tmp_path, capsys):
    base = tmp_path / "tiny.yaml"
    base.write_text(yaml.safe_dump(TINY))
    over = tmp_path / "short.yaml"
    over.write_text(yaml.safe_dump({"_base_": "tiny.yaml", "name": "short", "duration_s": 600,
                                    "isl": {"topology": "none"}}))
    out = tmp_path / "out"
    assert main(["plan", "--config", str(base), "--config", str(over),
                 "--set", "stations.names=[Matera]", "--set", "name=merged", "--out", str(out)]) == 0
    summary = json.loads((out / "merged_summary.json").read_text())
    assert summary["stations"] == 1 and summary["satellites"] == 8
    plan = ContactPlan.load(Path(summary["plan_file"]))
    assert plan.grid.duration_s == 600 and plan.meta["config"]["isl"] == {"topology": "none"}
    assert main(["plan", "--config", str(over), "--out", str(out)]) == 0  # _base_ alone
    assert json.loads((out / "short_summary.json").read_text())["stations"] == 2
    capsys.readouterr()
    assert main(["plan", "--config", str(over), "--set", "isl.topolgy=grid", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "short.yaml --set isl.topolgy=grid" in err and "did you mean 'topology'" in err
