"""Gossip over ISLs: the mixing matrix, the step rule, and runs with no ground and no root."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from research.fed.aggregate import flatten
from research.fed.config import FedConfigError, parse_config
from research.fed.runner import build_plan, prepare, run
from research.fed.topologies import gossip_steps, metropolis_weights
from tests.fed.conftest import GRID_SCENARIO, SCENARIO, tiny_raw


def _ring(n: int) -> list[list[int]]:
    return [sorted({(i - 1) % n, (i + 1) % n}) for i in range(n)]


def test_metropolis_weights_keep_the_average_and_the_step_rule_is_tight():
    w = metropolis_weights(_ring(10))
    assert np.allclose(w, w.T) and np.allclose(w.sum(axis=0), 1) and (w >= 0).all()
    lam = sorted(np.abs(np.linalg.eigvalsh(w)))[-2]
    s = gossip_steps(w, 1e-3)
    assert lam ** s <= 1e-3 < lam ** (s - 1)
    x = np.random.default_rng(0).normal(size=(10, 4))
    out = np.linalg.matrix_power(w, s) @ x
    assert np.allclose(out.mean(axis=0), x.mean(axis=0))
    assert np.abs(out - x.mean(axis=0)).max() <= 1e-3 * np.abs(x - x.mean(axis=0)).max() * 10
    assert gossip_steps(w, 1e-1) < s and gossip_steps(np.ones((1, 1)), 1e-3) == 0
    # a loose tolerance on a long chain still takes as many steps as the chain is long, so a
    # satellite at one end hears from the other (else its copy would hold nothing)
    chain = [[1]] + [[i - 1, i + 1] for i in range(1, 19)] + [[18]]
    assert gossip_steps(metropolis_weights(chain), 0.9) == 19


def test_gossip_needs_no_ground_and_averages_like_the_ring(grid_setup, tmp_path):
    res = {}
    for topology in ("gossip", "ring"):
        cfg = parse_config(tiny_raw(out_dir=str(tmp_path / topology), scheme="onboard",
                                    topology=topology, scenario=GRID_SCENARIO,
                                    comm={"gossip_tol": 1e-4}))
        res[topology] = run(cfg, setup=grid_setup)
    gossip = res["gossip"].rows
    assert all(r["bytes_downlink"] == 0 and r["bytes_uplink"] == 0 for r in gossip)
    assert all(r["bytes_isl"] > 0 and r["gossip_steps"] > 1 for r in gossip)
    assert all(0 < r["gossip_disagreement"] < 1e-3 for r in gossip)
    ring = res["ring"].rows
    # the ledger evaluates the copy farthest from the mean: close to the ring's exact mean
    assert [r["accuracy"] for r in gossip] == pytest.approx([r["accuracy"] for r in ring],
                                                             abs=0.02)
    assert torch.allclose(flatten(res["gossip"].head), flatten(res["ring"].head), atol=1e-3)
    assert gossip[-1]["accuracy"] > res["gossip"].initial_accuracy
    # many small steps over sparse links: far more bytes and time than the ring (the finding)
    assert gossip[-1]["bytes_isl"] > 10 * ring[-1]["bytes_isl"]
    assert gossip[-1]["duration_s"] > ring[-1]["duration_s"]


def test_a_looser_tolerance_takes_fewer_steps_bytes_and_time(grid_setup, tmp_path):
    rows = {}
    for tol in (1e-1, 1e-2):
        cfg = parse_config(tiny_raw(out_dir=str(tmp_path / str(tol)), scheme="onboard",
                                    topology="gossip", train={"rounds": 1},
                                    comm={"gossip_tol": tol}, scenario=GRID_SCENARIO))
        rows[tol] = run(cfg, setup=grid_setup).rows[0]
    loose, tight = rows[1e-1], rows[1e-2]
    assert loose["gossip_steps"] < tight["gossip_steps"]
    assert loose["bytes_isl"] < tight["bytes_isl"] and loose["t_end_s"] < tight["t_end_s"]
    assert loose["gossip_disagreement"] > tight["gossip_disagreement"]
    assert math.isfinite(loose["gossip_disagreement"])


def test_gossip_refuses_secagg_bad_tolerances_and_cut_off_satellites(tmp_path):
    with pytest.raises(FedConfigError, match="'gossip' cannot run under secagg"):
        parse_config(tiny_raw(topology="gossip", secagg={"enabled": True}))
    with pytest.raises(FedConfigError, match="gossip_tol must be in"):
        parse_config(tiny_raw(topology="gossip", comm={"gossip_tol": 1.0}))
    no_isl = {**SCENARIO, "name": "fed_tiny_no_isl", "isl": {"topology": "none"}}
    cfg = parse_config(tiny_raw(scenario=no_isl, topology="gossip", scheme="onboard",
                                out_dir=str(tmp_path), train={"rounds": 1}))
    with pytest.raises(ValueError, match="'gossip' needs the satellites' ISLs to join them all"):
        run(cfg, setup=prepare(cfg, plan=build_plan(no_isl)))


def test_gossip_waits_for_a_deadline_and_relays_through_satellites_without_data(
        grid_setup, tmp_path, monkeypatch):
    import dataclasses

    from research.fed.clients import SatelliteClient

    clients = list(grid_setup.clients)
    empty = clients[1]  # a plane neighbour of satellite 0: it must still relay
    clients[1] = SatelliteClient(empty.sat, empty.plane, np.array([], dtype=np.int64))
    setup = dataclasses.replace(grid_setup, clients=clients)
    cfg = parse_config(tiny_raw(out_dir=str(tmp_path / "relay"), scheme="onboard",
                                topology="gossip", scenario=GRID_SCENARIO, train={"rounds": 1},
                                comm={"gossip_tol": 0.05}))
    row = run(cfg, setup=setup).rows[0]
    assert f"{empty.sat}:no_data" in row["dropped_ids"]
    assert row["participants"] == len(clients) - 1 and row["gossip_steps"] > 0
    # a satellite 1e6 times slower than a Jetson Nano: the larger shards miss a 200 s deadline
    from devices import profiles
    from research.fed.regime import what_if_device

    monkeypatch.setattr(profiles, "_DEVICES", dict(profiles._DEVICES))
    deadline = 200.0
    cfg = parse_config(tiny_raw(out_dir=str(tmp_path / "deadline"), scheme="onboard",
                                topology="gossip", scenario=GRID_SCENARIO, train={"rounds": 1},
                                profiles={"satellite": what_if_device(1e-6)},
                                comm={"gossip_tol": 0.05, "round_deadline_s": deadline}))
    row = run(cfg, setup=grid_setup).rows[0]
    assert "deadline" in row["dropped_ids"] and row["participants"] > 0
    # the late planes' members start mixing at the deadline (not when their plane closed
    # early): the round ends a whole gossip after it
    assert row["duration_s"] > deadline + 1.0
