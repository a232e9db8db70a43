"""The policy scripts run end to end: the decision-time benchmark and the sweep's CLI."""

from __future__ import annotations

import json

import pytest

from tests.scripts.conftest import load_script


def test_bench_policy_times_decisions_against_what_if_routing(tmp_path, capsys):
    out = tmp_path / "bench.json"
    load_script("bench_policy").main(["--quick", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["options"] == 10 and result["captures"] > 0
    assert result["greedy_mean_ms"] > 0 and result["route_mean_ms"] > 0
    assert result["speedup_vs_route"] == pytest.approx(
        result["route_mean_ms"] / result["greedy_mean_ms"])
    assert "what-if routing baseline" in capsys.readouterr().out


def test_fig_policy_refuses_an_unknown_floor_mode():
    with pytest.raises(SystemExit):
        load_script("fig_policy").main(["--floor-mode", "median"])


def test_fig_policy_relay_hops_takes_an_integer_or_auto():
    parse = load_script("fig_policy").relay_hops
    assert parse("auto") == "auto" and parse("3") == 3 and parse("0") == 0
    for bad in ("-1", "far", "2.5"):
        with pytest.raises(Exception, match="expected an integer >= 0 or 'auto'"):
            parse(bad)


def test_fig_policy_headroom_reads_the_committed_sweep(tmp_path, capsys):
    load_script("fig_policy_headroom").main(["--sweep", "results/policy/policy_sweep.json",
                                             "--out", str(tmp_path)])
    record = json.loads((tmp_path / "policy_headroom.json").read_text())
    duty = [e for e in record["rows"] if e["per_orbit"] == 25.7 and e["floor"] == 0.95]
    assert duty and duty[0]["lower_neighbour"] == "jpeg80"
    assert 0 < duty[0]["greedy_p95_reduction"] < duty[0]["headroom"]
    assert (tmp_path / "policy_headroom.png").is_file() and "headroom" in capsys.readouterr().out


def test_fig_policy_headroom_names_a_missing_sweep(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_script("fig_policy_headroom").main(["--sweep", str(tmp_path / "none.json")])
    assert "no such file" in capsys.readouterr().err
