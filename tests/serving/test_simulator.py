"""Per-request outcomes speak the shared ledger vocabulary (:mod:`research.records`): bytes per
link type, energy by where it is spent, and latency parts that add up to ``latency_s``."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from research.records import (
    BYTES_FIELDS,
    ENERGY_FIELDS,
    LATENCY_FIELDS,
    check_latency,
    total_energy_j,
)
from research.serving.placement import Demand, PlacementProblem, default_nodes, optimise
from research.serving.routing import GROUND, Network
from research.serving.simulator import (
    Outcome,
    SimRequest,
    Step,
    ground_routes,
    make_requests,
    microservice_routes,
    monolithic_routes,
    simulate,
    summarise,
)

TASKS = ("landcover", "coarse", "retrieval")
VOCABULARY = (*BYTES_FIELDS, *ENERGY_FIELDS, *LATENCY_FIELDS, "latency_s")


@pytest.fixture(scope="module")
def schemes(catalog, plan):
    nodes = default_nodes(plan.satellites, plan.stations)
    demands = [Demand(s, TASKS, 0.01, tiles=16) for s in plan.satellites[:3]]
    p = PlacementProblem.from_catalog(catalog, nodes, demands)
    net = Network(plan)
    reqs = make_requests(demands, 1800, deadline_s=600, seed=0)
    routes = {"microservice": microservice_routes(p, [optimise(p, net)], 3600, reqs),
              "monolithic": monolithic_routes(p, reqs), "ground": ground_routes(p, reqs)}
    return {k: simulate(net, nodes, reqs, r, k) for k, r in routes.items()}


def test_outcome_fields_are_the_vocabulary():
    names = {f.name for f in fields(Outcome)}
    assert set(VOCABULARY) <= names, set(VOCABULARY) - names


def test_every_row_has_the_vocabulary_and_its_latency_adds_up(schemes):
    for scheme, outcomes in schemes.items():
        assert outcomes
        delivered = [o for o in outcomes if math.isfinite(o.latency_s)]
        assert delivered, scheme
        for o in outcomes:
            row = o.row()
            assert set(VOCABULARY) <= set(row), set(VOCABULARY) - set(row)
            check_latency(row, f"{scheme} {o.request_id}")
            assert row["return_s"] == 0.0
            assert all(row[f] >= 0 for f in (*BYTES_FIELDS, *ENERGY_FIELDS, *LATENCY_FIELDS))
        for o in delivered:
            assert o.bytes_downlink > 0  # every answer ends on the ground
            assert sum(getattr(o, f) for f in LATENCY_FIELDS) == pytest.approx(o.latency_s)


def test_energy_is_booked_where_it_is_spent(schemes):
    for o in schemes["monolithic"]:
        assert o.energy_onboard_compute_j > 0 and o.energy_ground_j == 0.0
        assert o.ground_compute_s == 0.0 and o.bytes_uplink == 0.0
    for o in (o for o in schemes["ground"] if math.isfinite(o.latency_s)):
        assert o.energy_onboard_compute_j == 0.0 and o.onboard_compute_s == 0.0
        assert o.energy_ground_j > 0 and o.ground_compute_s > 0
        assert o.energy_onboard_transmit_j > 0
        assert total_energy_j(o) == pytest.approx(
            o.energy_onboard_compute_j + o.energy_onboard_transmit_j + o.energy_ground_j)


def test_summary_uses_the_vocabulary(schemes):
    for outcomes in schemes.values():
        s = summarise(outcomes, {})
        for f in (*BYTES_FIELDS, *ENERGY_FIELDS):
            assert s[f] == pytest.approx(sum(getattr(o, f) for o in outcomes) / len(outcomes))
        assert s["energy_j"] == pytest.approx(sum(s[f] for f in ENERGY_FIELDS))
        assert {f"mean_{p}" for p in LATENCY_FIELDS} <= set(s)
        assert not {"tx_energy_j", "bytes_down", "onboard_energy_j", "ground_energy_j"} & set(s)


def test_uplink_bytes_and_station_energy_after_a_ground_stage(plan):
    """Down to a station, compute there, up to another satellite, compute, down again."""
    nodes = default_nodes(plan.satellites, plan.stations)
    src, other = plan.satellites[0], plan.satellites[5]
    req = SimRequest("up", 0, 0, src, TASKS, 0.0, 3600.0, 1)
    route = [Step(src, 1e9, 100_000.0, "down"), Step(GROUND, 1e9, 50_000.0, "ground"),
             Step(other, 1e9, 200.0, "head")]
    (o,) = simulate(Network(plan), nodes, [req], [route], "custom")
    assert math.isfinite(o.latency_s), o.reason
    check_latency(o)
    assert o.bytes_uplink == 50_000.0
    assert o.bytes_downlink >= 100_000.0 + 200.0
    # ground compute only: the station's uplink transmitter is not booked (as in eval and fed)
    assert o.energy_ground_j == pytest.approx(nodes[plan.stations[0]].profile.energy_j(1e9))
    assert o.onboard_compute_s > 0 and o.ground_compute_s > 0 and o.transmit_s > 0


def test_percentiles_count_undelivered_requests_as_infinitely_late():
    import numpy as np

    from research.serving.simulator import percentile

    done = np.arange(1.0, 21.0)  # 20 delivered
    assert percentile(np.append(done, math.inf), 95) == 20.0  # lands exactly on the 20th
    assert percentile(np.append(done, [math.inf] * 2), 95) == math.inf  # reaches past it
    assert percentile(done, 95) == float(np.percentile(done, 95))
    assert percentile(np.append(done[:11], [math.inf] * 10), 50) == 11.0
    assert math.isnan(percentile(np.array([]), 95))
