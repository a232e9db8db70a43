"""``satedge federate`` end to end on a tiny YAML, and fault masks on transfers."""

from __future__ import annotations

import json

import pytest
import yaml

from research.cli import main as satedge
from research.fed.config import Fault
from research.fed.network import FedNetwork
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


def test_station_outage_delays_a_direct_transfer(tiny_plan):
    sat, station = "sat-P00-S00", "gs-Matera"
    clear = FedNetwork(tiny_plan).transfer(sat, station, 1e6, 0.0, direct=True)
    start = clear.hops[0].t_start
    outage = Fault("station_outage", [station], 0.0, start + 600.0)
    masked = FedNetwork(tiny_plan, [outage]).transfer(sat, station, 1e6, 0.0, direct=True)
    assert masked.hops[0].t_start >= outage.end_s
    net = FedNetwork(tiny_plan, [outage])
    assert not any(g == station for _, g, _ in net.ground_pairs(start))


def test_isl_failure_is_routed_around_or_waited_out(tiny_plan):
    a, b = "sat-P00-S00", "sat-P00-S01"
    fail = Fault("isl_failure", [a, b], 0.0, 3600.0)
    res = FedNetwork(tiny_plan, [fail]).transfer(a, b, 1e4, 0.0)
    assert not any({h.src, h.dst} == {a, b} and h.t_ready < 3600.0 for h in res.hops)
    with pytest.raises(KeyError):
        FedNetwork(tiny_plan, [Fault("isl_failure", [a, "sat-nope"], 0.0, 1.0)])
