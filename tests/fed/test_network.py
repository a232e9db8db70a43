"""Fed transfers are booked on the run's NetworkState: uploads to one station queue, bookings
persist across rounds, and a resumed run books the earlier rounds' sends again.

The toy plan (two satellites always in view of one single-antenna station, 1 MB/s links) gives
closed forms: two 40 MB updates sent at once take 40 s and 80 s under ``capacity: exclusive``,
40 s each under ``capacity: unlimited``.
"""

from __future__ import annotations

import numpy as np
import pytest

from research.fed.clients import SatelliteClient
from research.fed.config import Fault, FedConfigError, parse_config
from research.fed.cost import Costs
from research.fed.network import GROUND, FedNetwork, Transfers
from research.fed.rounds import PRELOADED, RoundSimulator, RunState
from research.orbit import NetworkResources
from research.orbit.isl import KIND_GROUND, KIND_INTRA
from tests.fed.conftest import tiny_raw
from tests.orbit.toy import DELAY, toy_plan

UPDATE = 40e6  # bytes: 40 s at 1 MB/s


@pytest.fixture(scope="module")
def two_sats_one_antenna():
    return toy_plan({(0, 2, KIND_GROUND): [(0.0, 9000.0)], (1, 2, KIND_GROUND): [(0.0, 9000.0)]},
                    n_sat=2, n_gs=1)


def _uploads(net: FedNetwork) -> dict[str, float]:
    q, got = Transfers(net), {}
    for sat in ("s0", "s1"):
        q.request(10.0, sat, GROUND, UPDATE, direct=True,
                  then=lambda res, sat=sat: got.__setitem__(sat, res.t_arrival))
    q.run()
    return got


def test_two_uploads_to_one_station_take_longer_than_one(two_sats_one_antenna):
    got = _uploads(FedNetwork(two_sats_one_antenna))
    assert got["s0"] == pytest.approx(10.0 + 40.0 + DELAY)
    assert got["s1"] == pytest.approx(10.0 + 80.0 + DELAY)  # queued behind s0 at the antenna
    free = _uploads(FedNetwork(two_sats_one_antenna, resources=NetworkResources(
        capacity="unlimited")))
    assert list(free.values()) == pytest.approx([10.0 + 40.0 + DELAY] * 2)


def _simulator(plan, setup, network: dict | None = None) -> RoundSimulator:
    cfg = parse_config(tiny_raw(scheme="onboard", topology="star", network=network or {}))
    idx = np.arange(len(setup.data.train_y))
    clients = [SatelliteClient("s0", 0, idx[:10]), SatelliteClient("s1", 0, idx[10:20])]
    costs = Costs(embed_flops=0.0, encode_flops=0.0, head_flops=0.0, train_flops=0.0,
                  cut_bytes=0.0, feature_bytes=0.0, update_bytes=int(UPDATE))
    return RoundSimulator(cfg, FedNetwork(plan, resources=cfg.network), clients, costs,
                          setup.template, setup.data,
                          trainer=lambda r, head, sats: dict.fromkeys(sats, head))


def test_a_star_round_waits_for_the_busy_antenna_and_bookings_persist(two_sats_one_antenna,
                                                                      tiny_setup):
    backhaul = parse_config(tiny_raw()).comm.backhaul_s
    sim = _simulator(two_sats_one_antenna, tiny_setup)
    first = sim.run_round(RunState(0, 0.0, PRELOADED, tiny_setup.initial))
    row = first.rows[0]
    assert row["duration_s"] == pytest.approx(80.0 + DELAY + backhaul)
    assert row["queue_s"] == pytest.approx(40.0)  # waiting for the antenna
    second = sim.run_round(first)  # the broadcast queues too, then the uploads
    # broadcasts end at 40 and 80 s; the uploads follow on the one antenna: 80-120, 120-160 s
    assert second.rows[1]["duration_s"] == pytest.approx(160.0 + DELAY + backhaul)
    assert sim.net.summary()["direct"]["transfers"] == 2 + 4  # one state for the whole run
    free = _simulator(two_sats_one_antenna, tiny_setup, {"capacity": "unlimited"})
    row = free.run_round(RunState(0, 0.0, PRELOADED, tiny_setup.initial)).rows[0]
    assert row["duration_s"] == pytest.approx(40.0 + DELAY + backhaul)


def test_a_ring_that_cannot_close_falls_back_to_the_ground(tiny_setup):
    """s0 and s1 (plane 0) share no ISL: their ring fails and their updates go down; s2 (plane
    1) holds its own sum; the two sums then meet at s2 or on the ground."""
    plan = toy_plan({(0, 3, KIND_GROUND): [(0.0, 9000.0)], (1, 3, KIND_GROUND): [(0.0, 9000.0)],
                     (2, 3, KIND_GROUND): [(0.0, 9000.0)], (1, 2, KIND_INTRA): [(0.0, 9000.0)]},
                    n_sat=3, n_gs=1)
    cfg = parse_config(tiny_raw())
    idx = np.arange(len(tiny_setup.data.train_y))
    clients = [SatelliteClient("s0", 0, idx[:10]), SatelliteClient("s1", 0, idx[10:20]),
               SatelliteClient("s2", 1, idx[20:30])]
    costs = Costs(embed_flops=0.0, encode_flops=0.0, head_flops=0.0, train_flops=0.0,
                  cut_bytes=1e6, feature_bytes=1e6, update_bytes=int(1e6))
    sim = RoundSimulator(cfg, FedNetwork(plan), clients, costs, tiny_setup.template,
                         tiny_setup.data, trainer=lambda r, head, sats: dict.fromkeys(sats, head))
    with pytest.warns(UserWarning, match="plane 0: ring all-reduce failed"):
        state = sim.run_round(RunState(0, 0.0, PRELOADED, tiny_setup.initial))
    row = state.rows[0]
    assert row["participants"] == 3 and row["aggregation"] in ("ring+isl", "ring+ground")
    assert state.holder in ("s2", GROUND)
    assert sim.net.summary()["direct"]["transfers"] == 2  # the two fallback uploads


def test_replaying_the_log_rebuilds_the_bookings(tiny_plan):
    net = FedNetwork(tiny_plan)
    sats = tiny_plan.satellites[:4]
    for sat in sats:
        net.transfer(sat, GROUND, 5e6, 100.0)
    net.transfer(GROUND, sats[0], 5e6, 200.0, direct=True)
    log = net.take_log()
    assert len(log) == 5 and net.take_log() == []
    again = FedNetwork(tiny_plan)
    again.replay(log)
    probe = (sats[1], GROUND, 5e6, 100.0)
    assert again.route(*probe).t_arrival == net.route(*probe).t_arrival
    assert again.route(*probe).t_arrival > FedNetwork(tiny_plan).route(*probe).t_arrival
    assert again.summary() == net.summary()


def test_network_section_is_strict():
    assert parse_config(tiny_raw()).network == NetworkResources()
    assert parse_config(tiny_raw(network={"station_antennas": 2})).network.station_antennas == 2
    with pytest.raises(FedConfigError, match="unknown key 'antennas'.*network"):
        parse_config(tiny_raw(network={"antennas": 2}))
    with pytest.raises(FedConfigError, match="capacity 'shared' is not one of"):
        parse_config(tiny_raw(network={"capacity": "shared"}))


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


def test_one_search_gives_the_arrivals_of_one_route_each(tiny_plan):
    """The ring's root choice asks for many destinations at once (FedNetwork.arrivals): the
    same arrival times as one route per destination, before and after bookings."""
    import math

    from research.fed.network import GROUND, FedNetwork

    net = FedNetwork(tiny_plan)
    sats = tiny_plan.satellites
    dsts = [*sats[::4], GROUND]
    for step in range(2):
        for src, t in ((sats[0], 10.0), (sats[11], 900.0), (GROUND, 300.0)):
            got = net.arrivals(src, [d for d in dsts if d != src], 9256.0, t)
            for d, t_arrival in got.items():
                want = net.route(src, d, 9256.0, t)
                assert (t_arrival == want.t_arrival) or (math.isinf(t_arrival)
                                                         and not want.delivered), (src, d)
        if step == 0:  # book some traffic, then ask again
            for d in sats[1:8]:
                net.transfer(sats[0], d, 5e6, 20.0)
