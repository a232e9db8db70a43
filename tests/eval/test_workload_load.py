"""Workloads (sensors, capture schedules) and the ledger under load on a shared network."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from research.eval import ScenarioError, evaluate, parse_scenario
from research.eval.load import knees, load_sweep, write_sweep
from research.orbit import NetworkResources
from research.workload import SensorSpec, get_sensor, list_sensors, schedule_captures


def test_sensor_presets_scale_with_the_scene():
    s2 = get_sensor("sentinel2_msi")
    assert {"sentinel2_msi", "dove_cubesat", "demo_tile"} <= set(list_sensors())
    # 290 km x 500 km at 10 m: 1.45e9 pixels, 354,004 tiles of 64 x 64 (rounded up).
    assert s2.pixels_per_scene == pytest.approx(290e3 / 10 * 500e3 / 10)
    assert s2.tiles_per_scene == 354_004
    assert s2.raw_scene_bytes == pytest.approx(1.45e9 * 13 * 12 / 8)
    assert s2.scenes_per_orbit(6000.0) == pytest.approx(0.32 * 6000 * 7 / 500)
    assert get_sensor("demo_tile").tiles_per_scene == 1
    with pytest.raises(ValueError, match="unknown sensor preset 'landsat'.*sentinel2_msi"):
        get_sensor("landsat")
    with pytest.raises(ValueError, match="duty_cycle must be in"):
        SensorSpec("x", 1, 1, 1, 3, 8, duty_cycle=0.0, source="")


def test_poisson_schedule_has_the_asked_rate_and_is_seeded():
    s2 = get_sensor("sentinel2_msi")
    sats = [f"s{i}" for i in range(20)]
    caps = schedule_captures(s2, sats, 100 * 6000.0, 50, period_s=6000.0, per_orbit=3, seed=1)
    assert len(caps) == pytest.approx(20 * 100 * 3, rel=0.05)
    assert all(np.diff([c.t_s for c in caps]) >= 0)
    again = schedule_captures(s2, sats, 100 * 6000.0, 50, period_s=6000.0, per_orbit=3, seed=1)
    assert caps == again
    assert all(len(c.sample) == 8 and c.tiles == s2.tiles_per_scene for c in caps)
    with pytest.raises(ValueError, match="per_orbit must be a number > 0"):
        schedule_captures(s2, sats, 6000.0, 50, period_s=6000.0, per_orbit=-1)
    with pytest.raises(ValueError, match="beyond the orbit horizon"):
        schedule_captures(s2, sats, 6000.0, 50, period_s=6000.0, count=10, interval_s=1000)


@pytest.fixture
def heavy(raw_scenario):
    """Dove-like scenes (6,846 tiles) on the tiny scenario: raw downlink is hundreds of MB."""
    raw = copy.deepcopy(raw_scenario)
    raw["captures"] = {"sensor": "dove_cubesat", "per_orbit": 2, "start_s": 0, "seed": 0,
                       "sample_tiles": 4}
    raw["schemes"] = [{"name": "raw", "kind": "image", "format": "raw"},
                      {"name": "int8", "kind": "split", "link": "int8"}]
    return raw


def test_contention_makes_raw_scenes_queue(heavy):
    scenario = parse_scenario(heavy, "heavy.yaml")
    busy = evaluate(scenario, progress=False)
    free = evaluate(scenario, progress=False, network=NetworkResources(capacity="unlimited"))
    raw_busy = [r for r in busy.rows if r.scheme == "raw"]
    raw_free = [r for r in free.rows if r.scheme == "raw"]
    assert len(raw_busy) == len(raw_free) > 10
    assert all(r.payload_bytes == 3 * 64 * 64 * r.tiles for r in raw_busy)
    done = [(a, b) for a, b in zip(raw_busy, raw_free, strict=True) if a.delivered and b.delivered]
    # Sharing the links never makes a scene faster, and it makes some wait for others.
    assert all(a.latency_s >= b.latency_s - 1e-6 for a, b in done)
    assert sum(a.queue_s for a, _ in done) > sum(b.queue_s for _, b in done) + 1.0
    assert busy.network["raw"]["capacity"] == "exclusive"
    use = busy.network["raw"]
    assert use["delivered_bytes"] + use["undelivered_bytes"] == pytest.approx(use["offered_bytes"])


def test_load_sweep_rows_and_knees(heavy, tmp_path):
    scenario = parse_scenario(heavy, "heavy.yaml")
    rows, meta = load_sweep(scenario, [1, 8], progress=False)
    assert [(r["per_orbit"], r["scheme"]) for r in rows] == [
        (1.0, "raw"), (1.0, "int8"), (8.0, "raw"), (8.0, "int8")]
    low, high = rows[0], rows[2]
    assert high["inferences"] > 4 * low["inferences"]
    assert high["latency_p95_s"] >= low["latency_p95_s"]
    assert set(meta["knees"]) == {"raw", "int8"}
    paths = write_sweep(rows, meta, tmp_path)
    assert paths["png"].is_file() and paths["pdf"].is_file() and paths["csv"].is_file()
    with pytest.raises(ScenarioError, match="loads must be captures per orbit > 0"):
        load_sweep(scenario, [0], progress=False)


def test_knee_is_the_first_load_that_fails():
    rows = [{"scheme": "a", "per_orbit": x, "delivered_fraction": d, "latency_p95_s": p}
            for x, d, p in ((1, 1.0, 10), (2, 1.0, 50), (4, 0.9, 10), (8, 1.0, 10))]
    rows += [{"scheme": "b", "per_orbit": 1, "delivered_fraction": 1.0, "latency_p95_s": 10}]
    assert knees(rows, period_s=100) == {"a": 4, "b": None}
    assert knees(rows, period_s=20) == {"a": 2, "b": None}


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["captures"].update(sensor="landsat"), "unknown sensor preset 'landsat'"),
    (lambda r: r["captures"].update(per_orbit=-2), "per_orbit must be > 0"),
    (lambda r: r.update(network={"antennas": 2}), "unknown key 'antennas'"),
    (lambda r: r.update(network={"storage_bytes": -1}), "storage_bytes must be a number > 0"),
    (lambda r: r.update(network={"capacity": "shared"}), "capacity 'shared' is not one of"),
    (lambda r: r.update(network={"storage_bytes": 1000}), "smaller than one raw tile"),
])
def test_bad_workload_and_network_config(raw_scenario, edit, message):
    edit(raw_scenario)
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(raw_scenario, "bad.yaml")
