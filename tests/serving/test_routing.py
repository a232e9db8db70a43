"""Serving books its transfers on a NetworkState: a busy station antenna delays the next downlink.

The toy plan (two satellites always in view of one single-antenna station, 1 MB/s links) gives
closed forms: two raw downlinks captured at the same instant finish one transmit time apart
under ``capacity: exclusive`` and together under ``capacity: unlimited``.
"""

from __future__ import annotations

import numpy as np
import pytest

from research.orbit import NetworkResources
from research.orbit.isl import KIND_GROUND
from research.serving.config import ServingConfigError, parse_serve_config
from research.serving.placement import default_nodes
from research.serving.routing import GROUND, Network
from research.serving.simulator import SimRequest, Step, simulate, summarise
from tests.orbit.toy import DELAY, toy_plan

RAW = 40e6  # bytes: 40 s at 1 MB/s


@pytest.fixture(scope="module")
def two_sats_one_antenna():
    return toy_plan({(0, 2, KIND_GROUND): [(0.0, 5000.0)], (1, 2, KIND_GROUND): [(0.0, 5000.0)]},
                    n_sat=2, n_gs=1)


def _raw_downlinks(plan, resources=None):
    nodes = default_nodes(plan.satellites, plan.stations)
    reqs = [SimRequest(f"r{i}", 0, i, sat, ("landcover",), 10.0, 1000.0, 1)
            for i, sat in enumerate(plan.satellites)]
    routes = [[Step(r.source, 0.0, RAW, "downlink"), Step(GROUND, 0.0, 0.0, "ground")]
              for r in reqs]
    return simulate(Network(plan, resources), nodes, reqs, routes, "ground")


def test_one_antenna_serves_two_raw_downlinks_one_after_the_other(two_sats_one_antenna):
    first, second = _raw_downlinks(two_sats_one_antenna)
    assert not first.missed and not second.missed
    assert first.done_s == pytest.approx(10.0 + 40.0 + DELAY)
    assert second.done_s == pytest.approx(10.0 + 80.0 + DELAY)  # the sum of transmit times
    assert second.queue_s == pytest.approx(40.0)  # waiting for the antenna
    assert second.transmit_s == pytest.approx(40.0)
    free = _raw_downlinks(two_sats_one_antenna, NetworkResources(capacity="unlimited"))
    assert [o.done_s for o in free] == pytest.approx([10.0 + 40.0 + DELAY] * 2)
    two = _raw_downlinks(two_sats_one_antenna, NetworkResources(station_antennas=2))
    assert [o.done_s for o in two] == pytest.approx([10.0 + 40.0 + DELAY] * 2)


def test_the_antenna_goes_to_the_pass_that_starts_first_not_to_the_first_sender():
    """s0 sends first but sees the station only from 100 s; s1, sending later, is in view now:
    s1's downlink takes the antenna at once and s0's follows when its pass opens."""
    plan = toy_plan({(0, 2, KIND_GROUND): [(100.0, 5000.0)],
                     (1, 2, KIND_GROUND): [(0.0, 5000.0)]}, n_sat=2, n_gs=1)
    nodes = default_nodes(plan.satellites, plan.stations)
    reqs = [SimRequest("a", 0, 0, "s0", ("landcover",), 10.0, 1000.0, 1),
            SimRequest("b", 0, 1, "s1", ("landcover",), 20.0, 1000.0, 1)]
    routes = [[Step(r.source, 0.0, RAW, "downlink"), Step(GROUND, 0.0, 0.0, "ground")]
              for r in reqs]
    a, b = simulate(Network(plan), nodes, reqs, routes, "ground")
    assert b.done_s == pytest.approx(20.0 + 40.0 + DELAY) and b.queue_s == pytest.approx(0.0)
    assert a.done_s == pytest.approx(100.0 + 40.0 + DELAY)


def test_undelivered_transfer_is_missed_with_its_reason(two_sats_one_antenna):
    plan = two_sats_one_antenna
    nodes = default_nodes(plan.satellites, plan.stations)
    # the first holds the antenna until 4010 s; the second cannot finish before 5000 s
    reqs = [SimRequest(f"r{i}", 0, i, sat, ("landcover",), 10.0, 1e4, 1)
            for i, sat in enumerate(plan.satellites)]
    routes = [[Step(r.source, 0.0, 4e9, "downlink"), Step(GROUND, 0.0, 0.0, "ground")]
              for r in reqs]
    first, second = simulate(Network(plan), nodes, reqs, routes, "ground")
    assert not first.missed
    assert second.missed and second.reason.startswith("unreachable: s1 -> ground")
    assert "horizon" in second.reason
    with np.errstate(invalid="ignore"):  # percentiles over an infinite latency
        assert summarise([first, second], {})["unreachable"] == 1


def test_network_section_is_strict():
    raw = {"orbit": {"duration_s": 600}, "model": {"checkpoint": None, "backbone": "satvit_tiny"}}
    assert parse_serve_config(raw).network == NetworkResources()
    cfg = parse_serve_config({**raw, "network": {"capacity": "unlimited"}})
    assert cfg.network.capacity == "unlimited"
    with pytest.raises(ServingConfigError, match="unknown key 'antennas'.*network"):
        parse_serve_config({**raw, "network": {"antennas": 2}})
    with pytest.raises(ServingConfigError, match="capacity 'shared' is not one of"):
        parse_serve_config({**raw, "network": {"capacity": "shared"}})
    with pytest.raises(ServingConfigError, match="replaced by the network section"):
        parse_serve_config({**raw, "placement": {"station_antennas": True}})
