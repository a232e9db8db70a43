"""``satedge federate`` end to end on a tiny YAML: runs, resumes, names bad keys."""

from __future__ import annotations

import json

import yaml

from research.cli import main as satedge
from tests.fed.conftest import tiny_raw


def test_federate_cli_runs_and_resumes(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_raw(scheme="onboard")))
    out = tmp_path / "out"
    assert satedge(["federate", "--config", str(cfg), "--out", str(out), "--rounds", "1"]) == 0
    assert satedge(["federate", "--config", str(cfg), "--out", str(out), "--rounds", "2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 2 and (out / "round_0002.pt").is_file()
    assert "final_accuracy" in capsys.readouterr().out


def test_federate_cli_bad_key_exits_with_the_key(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(tiny_raw(comm={"maxflw": False})))
    assert satedge(["federate", "--config", str(cfg)]) == 2
    assert "maxflw" in capsys.readouterr().err
    cfg.write_text(yaml.safe_dump(tiny_raw()))
    assert satedge(["federate", "--config", str(cfg), "--set", "comm.maxflw=false"]) == 2
    err = capsys.readouterr().err
    assert "--set comm.maxflw=false" in err and "did you mean 'maxflow'" in err
