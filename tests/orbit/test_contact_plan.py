"""ContactPlan queries, store-and-forward transfers, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skyfield.api import EarthSatellite, wgs84

from research.constants import C_M_S
from research.orbit import ContactPlan, TransferResult, UnreachableError, constellation_preset
from research.orbit.timegrid import timescale

EPOCH = "2024-07-16T12:00:00Z"


def test_basic_shape(demo):
    assert len(demo.satellites) == 66 and len(demo.stations) == 6
    assert demo.satellites[0] == "sat-P00-S00" and demo.stations[0] == "gs-Kiruna"
    assert demo.plane_of("sat-P03-S07") == 3
    assert demo.times[1] - demo.times[0] == 10.0 and demo.horizon_s == 3 * 3600
    s = demo.summary()
    assert s["contacts"] > 50 and 100 < s["mean_contact_duration_s"] < 900
    assert 1e8 < s["mean_downlink_rate_bps"] < 6e8
    assert s["isl_links"] == 132


def test_neighbours_symmetric_and_consistent(demo):
    for t in (0.0, 1234.5, 5000.0):
        pairs = demo.visible_pairs(t)
        for sat, gs, rate in pairs:
            assert rate == demo.rate_bps(sat, gs, t) > 0
            assert gs in demo.neighbours(sat, t) and sat in demo.neighbours(gs, t)
        for a in demo.satellites[:20]:
            for b in demo.neighbours(a, t):
                assert a in demo.neighbours(b, t)
                d = demo.delay_s(a, b, t)
                assert d == pytest.approx(demo.range_m(a, b, t) / C_M_S)
                assert 0 < d < 0.03


def test_out_of_contact_and_bad_queries(demo):
    gs = "gs-Kiruna"
    t = next(c for c in demo.contacts(gs)).end_s + 1.0
    sat = next(c for c in demo.contacts(gs)).a
    if not demo.in_contact(sat, gs, t):
        assert demo.rate_bps(sat, gs, t) == 0.0 and math.isinf(demo.delay_s(sat, gs, t))
        assert math.isnan(demo.doppler_hz(sat, gs, t))
    with pytest.raises(ValueError, match="outside the plan horizon"):
        demo.neighbours(gs, demo.horizon_s)
    with pytest.raises(KeyError, match="unknown node 'gs-Nowhere'"):
        demo.neighbours("gs-Nowhere", 0.0)
    with pytest.raises(ValueError, match="ground station"):
        demo.plane_of(gs)


def test_transfer_waits_for_contact_hand_check(demo_no_isl):
    plan = demo_no_isl
    c = next(c for c in plan.contacts("gs-Matera") if c.start_s > 600)
    t0 = c.start_s - 500.0
    n_bytes = 1e6
    res = plan.transfer(c.a, c.b, n_bytes, t0)
    rate = plan.rate_bps(c.a, c.b, c.start_s + 1e-6)
    t_sent = c.start_s + 8 * n_bytes / rate
    delay = plan.delay_s(c.a, c.b, t_sent)
    assert res.path == [c.a, c.b]
    assert res.t_arrival == pytest.approx(t_sent + delay, abs=1e-6)
    assert res.wait_s == pytest.approx(500.0, abs=1e-6)
    assert res.transmit_s == pytest.approx(8 * n_bytes / rate, rel=1e-9)
    assert res.energy_j == pytest.approx(plan.models["downlink"].tx_power_w * res.transmit_s)
    t_arr, path, energy = res  # unpacks as a triple
    assert (t_arr, path, energy) == (res.t_arrival, res.path, res.energy_j)
    assert res.latency_s == pytest.approx(res.wait_s + res.transmit_s + res.propagation_s)


def test_transfer_resumes_in_next_window(demo_no_isl):
    plan = demo_no_isl
    sat = "sat-P00-S00"
    wins = [c for c in plan.contacts(sat) if c.b == "gs-Matera"]
    assert len(wins) >= 2
    w0, w1 = wins[0], wins[1]
    link, _ = plan._link(sat, "gs-Matera")
    w = plan.window_at(link, w0.start_s)
    cap = plan.window_profile(w, True)[2][-1] / 8  # bytes the first window can carry
    res = plan.transfer(sat, "gs-Matera", cap * 1.1, w0.start_s)
    assert res.t_arrival > w1.start_s
    assert res.transmit_s > w0.duration_s
    assert res.wait_s >= w1.start_s - w0.end_s - 1e-6
    assert res.latency_s == pytest.approx(res.wait_s + res.transmit_s + res.propagation_s)


def test_isl_routes_beat_waiting(demo, demo_no_isl):
    sat, gs = "sat-P03-S05", "gs-Santiago"
    with_isl = demo.transfer(sat, gs, 1e6, 0.0)
    without = demo_no_isl.transfer(sat, gs, 1e6, 0.0)
    assert with_isl.t_arrival <= without.t_arrival + 1e-9
    assert with_isl.path[0] == sat and with_isl.path[-1] == gs
    assert all(h.t_arrival >= h.t_ready for h in with_isl.hops)
    for h0, h1 in zip(with_isl.hops[:-1], with_isl.hops[1:], strict=True):
        assert h1.t_ready == h0.t_arrival  # store and forward
    assert with_isl.energy_j == pytest.approx(sum(h.energy_j for h in with_isl.hops))


def test_transfer_between_neighbours_over_isl(demo):
    res = demo.transfer("sat-P00-S00", "sat-P00-S01", 1.25e6, 100.0)
    assert res.path == ["sat-P00-S00", "sat-P00-S01"]
    expected = 100.0 + 1e7 / 10e9 + demo.delay_s("sat-P00-S00", "sat-P00-S01", 100.0)
    assert res.t_arrival == pytest.approx(expected, abs=1e-6)
    assert res.energy_j == pytest.approx(40.0 * 1e7 / 10e9)
    same = demo.transfer("sat-P00-S00", "sat-P00-S00", 1e9, 5.0)
    assert same.t_arrival == 5.0 and same.path == ["sat-P00-S00"] and same.energy_j == 0.0


def test_uplink_uses_uplink_model(demo):
    sat, gs, t = demo.visible_pairs(1000.0)[0]
    up = demo.rate_bps(gs, sat, 1000.0)
    assert 0 < up < t  # S-band uplink is far slower than the X-band downlink
    res = demo.transfer(gs, sat, 1e5, 1000.0)
    assert res.path[0] == gs and res.path[-1] == sat
    assert isinstance(res, TransferResult)


def test_unreachable_is_a_clear_error(demo):
    with pytest.raises(UnreachableError, match="no route from sat-P00-S00 to gs-Kiruna"):
        demo.transfer("sat-P00-S00", "gs-Kiruna", 1e15, 0.0)
    with pytest.raises(ValueError, match="n_bytes"):
        demo.transfer("sat-P00-S00", "gs-Kiruna", -1, 0.0)


def test_save_load_roundtrip(demo, tmp_path):
    path = demo.save(tmp_path / "plan")
    assert path.suffix == ".npz"
    again = ContactPlan.load(path)
    assert again.summary() == demo.summary()
    assert again.contacts(kind=None) == demo.contacts(kind=None)
    assert again.neighbours("sat-P01-S01", 777.0) == demo.neighbours("sat-P01-S01", 777.0)
    a = demo.transfer("sat-P02-S03", "gs-Matera", 5e6, 60.0)
    b = again.transfer("sat-P02-S03", "gs-Matera", 5e6, 60.0)
    assert (a.t_arrival, a.path, a.energy_j) == (b.t_arrival, b.path, b.energy_j)
    assert again.sunlit_fraction() == demo.sunlit_fraction()
    with pytest.raises(FileNotFoundError):
        ContactPlan.load(tmp_path / "missing.npz")


def test_doppler_matches_skyfield_range_rate(demo):
    c = max(demo.contacts("gs-Matera"), key=lambda c: c.duration_s)
    t = math.floor((c.start_s + c.end_s) / 2 / 10) * 10 + 10
    i = demo.index(c.a)
    sat = EarthSatellite.from_satrec(constellation_preset("demo_6x11", EPOCH).satrecs[i],
                                     timescale())
    site = wgs84.latlon(40.650, 16.704, elevation_m=540.0)
    ts = demo.grid.skyfield_times(np.array([t - 0.5, t + 0.5]))
    rng = (sat - site).at(ts).distance().m
    rdot_sky = rng[1] - rng[0]
    assert abs(demo.range_rate_m_s(c.a, c.b, t) - rdot_sky) < 1.0
    assert demo.doppler_hz(c.a, c.b, t) == pytest.approx(-8.2e9 * rdot_sky / C_M_S, abs=30.0)


def test_transfer_to_any_of_several_nodes_takes_the_earliest(demo_no_isl):
    sat = demo_no_isl.satellites[7]
    each = []
    for g in demo_no_isl.stations:
        try:
            each.append(demo_no_isl.transfer(sat, g, 5e6, 600.0))
        except UnreachableError:  # e.g. Kiruna is never seen from a 53-degree shell
            pass
    assert each
    anyone = demo_no_isl.transfer(sat, demo_no_isl.stations, 5e6, 600.0)
    best = min(each, key=lambda r: r.t_arrival)
    assert anyone.t_arrival == pytest.approx(best.t_arrival)
    assert anyone.path[-1] == best.path[-1]
    with pytest.raises(ValueError, match="at least one node"):
        demo_no_isl.transfer(sat, [], 1.0, 0.0)
    back = []
    for g in demo_no_isl.stations:
        try:
            back.append(demo_no_isl.transfer(g, sat, 5e6, 600.0))
        except UnreachableError:
            pass
    from_any = demo_no_isl.transfer(demo_no_isl.stations, sat, 5e6, 600.0)
    first = min(back, key=lambda r: r.t_arrival)
    assert from_any.t_arrival == pytest.approx(first.t_arrival)
    assert from_any.path[0] == first.path[0]


def test_station_never_in_view_gives_an_empty_plan_not_a_crash():
    from research.orbit import GroundStation, IslConfig, TimeGrid, build_contact_plan, walker

    shell = walker(2, 4, 550.0, 53.0, epoch="2024-07-16T12:00:00Z")
    pole = [GroundStation("Pole", 89.9, 0.0)]
    plan = build_contact_plan(shell, pole, TimeGrid("2024-07-16T12:00:00Z", 3600, 60),
                              isl=IslConfig(topology="none"), eclipse=False)
    assert plan.contacts() == []
    with pytest.raises(UnreachableError):
        plan.transfer(plan.satellites[0], "gs-Pole", 1.0, 0.0)
