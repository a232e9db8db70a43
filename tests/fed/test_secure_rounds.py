"""Secure aggregation in the rounds: the protocol's messages booked on the network, the head from
masked vectors equal to plain FedAvg, dropouts and failed rounds handled, resume exact."""

from __future__ import annotations

import pytest
import torch

from research.fed.config import FedConfigError, parse_config
from research.fed.runner import run
from research.fed.secagg import SecAggCost
from research.fed.secure_rounds import threshold_for
from tests.fed.conftest import DAY_SCENARIO, tiny_raw


def _run(tiny_setup, tmp_path, name, **overrides):
    if tiny_setup.plan.horizon_s == DAY_SCENARIO["duration_s"]:
        overrides.setdefault("scenario", DAY_SCENARIO)
    cfg = parse_config(tiny_raw(out_dir=str(tmp_path / name), **overrides))
    return run(cfg, setup=tiny_setup, resume=False)


@pytest.mark.parametrize("topology", ["ring", "star"])
def test_secure_rounds_give_the_plain_head_and_book_every_stage(tiny_setup, tiny_day_setup,
                                                                tmp_path, topology):
    setup = tiny_day_setup if topology == "star" else tiny_setup
    plain = _run(setup, tmp_path, "plain", topology=topology, train={"rounds": 1})
    secure = _run(setup, tmp_path, "secure", topology=topology, train={"rounds": 1},
                  secagg={"enabled": True})
    for k in plain.head:
        torch.testing.assert_close(secure.head[k], plain.head[k], rtol=0, atol=1e-6)
    p, s = plain.rows[0], secure.rows[0]
    assert s["participants"] == p["participants"] and s["secagg_max_abs_error"] < 1e-6
    n = s["secagg_cohort"]
    assert p["participants"] <= n <= p["participants"] + p["dropped"]
    cost = SecAggCost.for_round(n, setup.costs.update_bytes // 4 + 1, 64,
                                threshold_for(n, 0.5))
    setup_bytes = n * (cost.keys_up + cost.keys_down + cost.shares_up + cost.shares_down)
    unmask_bytes = threshold_for(n, 0.5) * cost.unmask_up  # at least t replies
    assert setup_bytes + unmask_bytes <= s["bytes_secagg_control"] \
        <= setup_bytes + n * (cost.unmask_up + 4 * n)
    # masked inputs: 64-bit values (and the weight) instead of float32
    assert s["bytes_model_exchange"] > 1.9 * p["bytes_model_exchange"]
    assert s["duration_s"] >= p["duration_s"] - 1e-6
    assert sum(s[f"bytes_{k}"] for k in ("downlink", "uplink", "isl")) > \
        sum(p[f"bytes_{k}"] for k in ("downlink", "uplink", "isl"))


def test_star_waits_for_the_extra_round_trips_through_the_ground(tiny_day_setup, tmp_path):
    plain = _run(tiny_day_setup, tmp_path, "plain", topology="star", train={"rounds": 1})
    secure = _run(tiny_day_setup, tmp_path, "secure", topology="star", train={"rounds": 1},
                  secagg={"enabled": True})
    # direct links only: keys, shares and unmasking each wait for a pass
    assert secure.rows[0]["duration_s"] > 2 * plain.rows[0]["duration_s"]


def test_satellites_late_for_the_setup_are_left_out_and_the_rest_still_unmask(tiny_setup,
                                                                               tmp_path):
    # the coordinator (the ground) gives each stage 30 s: planes whose keys are not in by then
    # are left out, the others go on
    res = _run(tiny_setup, tmp_path, "late", topology="ring", train={"rounds": 1},
               comm={"round_deadline_s": 200},
               secagg={"enabled": True, "stage_timeout_s": 30.0})
    row = res.rows[0]
    reasons = [d.split(":")[1] for d in row["dropped_ids"].split(";") if d]
    assert "secagg_setup" in reasons and row["participants"] > 0
    assert row["aggregation"] != "secagg_failed" and row["secagg_max_abs_error"] < 1e-6
    # without a stage timeout the missing keys are only known at the deadline: too late for
    # anyone, the round is given up (previous head) and ends no earlier than its deadline
    res = _run(tiny_setup, tmp_path, "wait", topology="ring", train={"rounds": 1},
               comm={"round_deadline_s": 200}, secagg={"enabled": True})
    row = res.rows[0]
    assert row["aggregation"] == "secagg_failed" and row["participants"] == 0
    assert row["duration_s"] >= 200 and "deadline" in row["dropped_ids"]


def test_a_round_that_cannot_be_unmasked_keeps_the_previous_head(tiny_setup, tmp_path):
    res = _run(tiny_setup, tmp_path, "fail", topology="star", train={"rounds": 1},
               comm={"round_deadline_s": 12000}, secagg={"enabled": True, "threshold": 0.9})
    row = res.rows[0]
    assert row["aggregation"] == "secagg_failed" and row["participants"] == 0
    assert "secagg_threshold" in row["dropped_ids"]
    for k, v in tiny_setup.initial.items():
        torch.testing.assert_close(res.head[k], v)


def test_a_failed_unmask_leaves_the_server_momentum_alone(tiny_setup, tmp_path):
    """With a velocity from earlier rounds, a round that releases nothing neither moves the head
    (a momentum step on a zero pseudo-gradient would) nor decays the velocity."""
    from research.fed.network import FedNetwork
    from research.fed.rounds import RunState
    from research.fed.runner import PRELOADED, simulator_class

    cfg = parse_config(tiny_raw(out_dir=str(tmp_path / "m"), topology="star",
                                train={"rounds": 1, "server_lr": 1.5, "server_momentum": 0.5},
                                comm={"round_deadline_s": 12000},
                                secagg={"enabled": True, "threshold": 0.9}))
    net = FedNetwork(tiny_setup.plan, cfg.faults, cfg.network)
    sim = simulator_class(cfg)(cfg, net, tiny_setup.clients, tiny_setup.costs,
                               tiny_setup.template, tiny_setup.data)
    velocity = {k: torch.ones_like(v) for k, v in tiny_setup.initial.items()}
    nxt = sim.run_round(RunState(round=0, t=0.0, holder=PRELOADED, head=tiny_setup.initial,
                                 server_velocity=velocity))
    assert nxt.rows[0]["aggregation"] == "secagg_failed"
    for k, v in tiny_setup.initial.items():
        torch.testing.assert_close(nxt.head[k], v)
        torch.testing.assert_close(nxt.server_velocity[k], velocity[k])


def test_secure_run_resumes_exactly(tiny_setup, tmp_path):
    raw = tiny_raw(topology="ring", secagg={"enabled": True}, out_dir=str(tmp_path / "r"))
    whole = run(parse_config({**raw, "out_dir": str(tmp_path / "whole")}), setup=tiny_setup,
                resume=False)
    cfg = parse_config(raw)
    first = run(cfg, setup=tiny_setup, resume=False, max_rounds=1)
    assert len(first.rows) == 1  # really interrupted after round 1
    rest = run(cfg, setup=tiny_setup)
    assert [r["t_end_s"] for r in rest.rows] == [r["t_end_s"] for r in whole.rows]
    assert [r["bytes_secagg_control"] for r in rest.rows] == \
        [r["bytes_secagg_control"] for r in whole.rows]
    for k in whole.head:
        torch.testing.assert_close(rest.head[k], whole.head[k])


@pytest.mark.parametrize("secagg, message", [
    ({"bits": 16}, "secagg.bits must be 32 or 64"),
    ({"bits": 32, "frac_bits": 32}, "0 < secagg.frac_bits < bits - 1"),
    ({"threshold": 1.0}, "secagg.threshold must be a fraction in"),
    ({"threshold": 0.3}, "t is a majority"),
    ({"stage_timeout_s": 0}, "stage_timeout_s must be > 0"),
    ({"enable": True}, "enabled"),
])
def test_bad_secagg_config_names_the_key(secagg, message):
    with pytest.raises(FedConfigError, match=message):
        parse_config(tiny_raw(secagg=secagg))


def test_threshold_is_a_majority_by_default_and_stays_in_range():
    assert [threshold_for(n, 0.5) for n in (2, 3, 10, 66)] == [2, 2, 6, 34]
    assert threshold_for(2, 0.5) == 2 and threshold_for(10, 0.99) == 10


def test_overhead_sweep_compares_each_topology_with_its_plain_run(tiny_day_setup, tmp_path):
    from research.fed.secagg_overhead import replot, sweep

    base = parse_config(tiny_raw(scenario=DAY_SCENARIO, train={**tiny_raw()["train"], "rounds": 1}))
    summary = sweep(base, tmp_path / "out", topologies=["ring", "star"],
                    variants=["plain", "secagg64", "secagg32"], runs=tmp_path / "runs",
                    setup=tiny_day_setup)
    rows = summary["against_plain"]
    assert [(r["topology"], r["variant"]) for r in rows] == [
        ("ring", "secagg64"), ("ring", "secagg32"), ("star", "secagg64"), ("star", "secagg32")]
    for r in rows:
        assert r["control_bytes_per_round"] > 0 and r["max_abs_error"] < 1e-3
        assert r["model_bytes_ratio"] > (1.9 if r["variant"] == "secagg64" else 0.9)
    star = next(r for r in rows if r["topology"] == "star" and r["variant"] == "secagg64")
    assert star["round_time_ratio"] > 2  # direct links: each round trip waits for a pass
    for name in ("fed_secagg.png", "fed_secagg.pdf", "fed_secagg_runs.csv",
                 "fed_secagg_ledger.json", "fed_secagg_summary.json"):
        assert (tmp_path / "out" / name).is_file()
    (tmp_path / "out" / "fed_secagg.png").unlink()
    replot(tmp_path / "out")
    assert (tmp_path / "out" / "fed_secagg.png").is_file()


def test_overhead_regime_grows_the_control_bytes_with_the_cohort(tmp_path):
    from research.fed.secagg_overhead import regime

    base = parse_config(tiny_raw(scenario=DAY_SCENARIO, scheme="onboard",
                                 train={**tiny_raw()["train"], "rounds": 2}))
    rows = regime(base, tmp_path / "out", [(3, 5), (3, 10)], topologies=["ring"], rounds=1,
                  duration_s=24 * 3600, cache_dir=str(tmp_path / "cache"))
    assert [r["satellites"] for r in rows] == [15, 30]
    assert rows[1]["cohort"] > rows[0]["cohort"] >= 2
    assert rows[1]["control_bytes_per_satellite"] > rows[0]["control_bytes_per_satellite"]
    assert all(r["participants_secure"] <= r["participants_plain"] for r in rows)
    assert (tmp_path / "out" / "fed_secagg_regime.png").is_file()


def test_distributed_dp_noise_runs_under_secure_aggregation(tiny_setup, tmp_path):
    """Satellite-level DP's noise is split over the cohort for exactly this: under SecAgg the
    aggregator sees only masked, noised updates, and the head equals the DP run's."""
    privacy = {"level": "satellite", "epsilon": 8.0}
    dp = _run(tiny_setup, tmp_path, "dp", privacy=privacy)
    both = _run(tiny_setup, tmp_path, "both", privacy=privacy, secagg={"enabled": True})
    assert [r["epsilon"] for r in both.rows] == [r["epsilon"] for r in dp.rows]
    assert all(r["secagg_max_abs_error"] < 1e-6 for r in both.rows)
    for k in dp.head:
        torch.testing.assert_close(both.head[k], dp.head[k], rtol=0, atol=1e-6)


def test_with_duration_keeps_the_scenario_but_its_length():
    from research.fed.scenarios import with_duration

    base = parse_config(tiny_raw())
    scen = with_duration(base, 2 * 86400)
    assert scen["duration_s"] == 2 * 86400 and scen["name"].endswith("_2d")
    assert scen["constellation"] == base.scenario["constellation"]
    assert parse_config(tiny_raw(scenario=scen)).scenario["duration_s"] == 2 * 86400


def test_a_round_that_released_nothing_spends_no_privacy(tiny_setup, tmp_path):
    res = _run(tiny_setup, tmp_path, "dpfail", topology="star", train={"rounds": 1},
               comm={"round_deadline_s": 12000}, privacy={"level": "satellite", "epsilon": 8.0},
               secagg={"enabled": True, "threshold": 0.9})
    (row,) = res.rows
    assert row["aggregation"] == "secagg_failed" and row["participants"] == 0
    assert row["epsilon"] == 0.0 and row["dp_noise_multiplier"] is None


def test_shells_are_parsed_or_named_in_the_error():
    from research.fed.scenarios import parse_shells

    assert parse_shells(["6x11", "12X22"]) == [(6, 11), (12, 22)]
    for bad in (["6-11"], ["6x"], ["0x11"]):
        with pytest.raises(ValueError, match="PLANESxSATS|at least 1 plane"):
            parse_shells(bad)
