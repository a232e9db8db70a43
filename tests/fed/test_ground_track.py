"""Ground-track partition: real geography, daylight captures, plane-correlated clients, and a run."""

from __future__ import annotations

import numpy as np
import pytest

from research.data.imagefolder import EUROSAT_CLASSES
from research.fed.config import FedConfigError, parse_config
from research.fed.ground_track import (
    LAND_MIX,
    MAX_CAPTURE_LAT_DEG,
    captured_class_weights,
    class_mix,
)
from research.fed.runner import prepare, run
from research.orbit import parse_config as parse_orbit_config
from research.orbit.land import land_fraction
from tests.fed.conftest import SCENARIO, tiny_raw

SEA = EUROSAT_CLASSES.index("SeaLake")


def test_land_fraction_is_real_geography():
    # Sahara, Amazon, Siberia: land; mid-Pacific, Southern Ocean: sea (either longitude sign)
    land = land_fraction(np.array([23.0, -5.0, 62.0, 0.0, -55.0]),
                         np.array([10.0, -62.0, 100.0, -150.0, 210.0]))
    assert land.tolist() == pytest.approx([1, 1, 1, 0, 0], abs=0.05)
    lat = np.arange(-89.75, 90, 0.5)
    grid_lat, grid_lon = np.meshgrid(lat, np.arange(-179.75, 180, 0.5), indexing="ij")
    w = np.cos(np.radians(grid_lat))
    assert (land_fraction(grid_lat, grid_lon) * w).sum() / w.sum() == pytest.approx(0.29, abs=0.01)
    with pytest.raises(ValueError, match="within"):
        land_fraction(np.array([91.0]), np.array([0.0]))


def test_class_mix_is_sea_over_sea_zone_mix_over_land_and_nothing_at_the_poles():
    for _, mix in LAND_MIX:
        assert sum(mix.values()) == pytest.approx(1.0)
    mix = class_mix(np.array([0.0, 0.0, 48.0, 85.0]), np.array([-150.0, 22.0, 2.0, 0.0]))
    assert mix[0, SEA] == pytest.approx(1.0)  # mid-Pacific
    assert EUROSAT_CLASSES[int(mix[1].argmax())] == "Forest"  # Congo basin
    assert EUROSAT_CLASSES[int(mix[2].argmax())] == "AnnualCrop"  # Paris basin
    assert mix[:3].sum(axis=1) == pytest.approx([1.0, 1.0, 1.0])
    assert mix[3].sum() == 0.0 and MAX_CAPTURE_LAT_DEG < 85


def test_captures_follow_the_track_in_daylight_and_planes_differ():
    scenario = parse_orbit_config(SCENARIO)
    names, w = captured_class_weights(scenario, 5400.0)
    assert names == list(scenario.constellation.names) and w.shape == (30, 10)
    assert (w.sum(axis=1) > 0).all()
    assert w.sum(axis=1).max() < 5400 / 30 * 0.75  # night and polar captures are skipped
    mix = w / w.sum(axis=1, keepdims=True)
    assert np.ptp(mix[:, SEA]) > 0.2  # some flew over oceans, some over continents

    def dist(a: int, b: int) -> float:
        return float(np.abs(mix[a] - mix[b]).sum())
    same_plane = np.mean([dist(10 * p + i, 10 * p + (i + 1) % 10)
                          for p in range(3) for i in range(10)])
    other_plane = np.mean([dist(10 * p + i, 10 * ((p + 1) % 3) + i)
                           for p in range(3) for i in range(10)])
    assert same_plane < other_plane  # neighbours in a plane fly nearly the same track
    _, short = captured_class_weights(scenario, 600.0)
    assert (short.sum(axis=1) == 0).any()  # ten minutes: some satellites are in the night
    with pytest.raises(ValueError, match="capture_window_s must be in"):
        captured_class_weights(scenario, 7 * 3600.0)


def test_ground_track_run_learns_and_deals_what_each_satellite_saw(tiny_plan, tmp_path):
    cfg = parse_config(tiny_raw(data={"max_images": 300, "partition": "ground_track",
                                      "capture_window_s": 5400.0}, out_dir=str(tmp_path)))
    setup = prepare(cfg, plan=tiny_plan)
    labels = setup.data.train_y.numpy()
    assert sorted(np.concatenate([c.indices for c in setup.clients]).tolist()) == list(
        range(len(labels)))
    sea = [float((labels[c.indices] == SEA).mean()) for c in setup.clients if c.n]
    assert max(sea) - min(sea) > 0.2
    res = run(cfg, setup=setup)
    assert res.rows[-1]["accuracy"] > res.initial_accuracy
    assert res.rows[0]["bytes_isl_intra"] > 0


def test_bad_ground_track_settings_are_named():
    with pytest.raises(FedConfigError, match="ground_track"):
        parse_config(tiny_raw(data={"partition": "latitude"}))
    with pytest.raises(FedConfigError, match="capture_window_s"):
        parse_config(tiny_raw(data={"partition": "ground_track", "capture_window_s": 0}))


def test_partition_figure_writes_counts_and_shows_plane_correlation(tmp_path):
    import json

    from research.fed.partition_figure import partition_figure

    cfg = parse_config(tiny_raw(data={"max_images": 300}))
    paths = partition_figure(cfg, tmp_path, cache_dir=str(tmp_path / "cache"))
    assert {p.suffix for p in paths} == {".png", ".pdf"}
    summary = json.loads((tmp_path / "fed_partition_summary.json").read_text())
    track = summary["ground_track"]
    assert track["l1_neighbour_in_plane"] < track["l1_same_slot_next_plane"]
    rows = (tmp_path / "fed_partition_counts.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 30  # header, both partitions x 30 satellites


def test_capture_window_sweep_trains_each_window_and_counts_empty_satellites(tmp_path):
    from research.fed.window_sweep import capture_window_sweep

    cfg = parse_config(tiny_raw(data={"max_images": 300, "partition": "ground_track"},
                                train={"rounds": 1}))
    rows = capture_window_sweep(cfg, [600.0, 5400.0], [0], tmp_path / "out",
                                runs=tmp_path / "runs", cache_dir=str(tmp_path / "cache"))
    by = {(r["partition"], r["capture_window_s"]): r for r in rows}
    assert set(by) == {("ground_track", 600.0), ("ground_track", 5400.0), ("iid", None),
                       ("dirichlet", None)}
    # ten minutes: part of the shell is in the night and holds nothing; a full orbit: none
    assert by["ground_track", 600.0]["satellites_without_data"] > 0
    assert by["ground_track", 5400.0]["satellites_without_data"] == 0
    assert by["ground_track", 600.0]["classes_with_5pct_mean"] < by[
        "ground_track", 5400.0]["classes_with_5pct_mean"]  # one region each: fewer classes
    assert by["dirichlet", None]["classes_with_5pct_mean"] < by["iid", None][
        "classes_with_5pct_mean"]
    assert (tmp_path / "out" / "fed_capture_window.png").is_file()


def test_partition_stats_leave_out_satellites_without_data():
    from research.fed.partition_figure import partition_stats

    counts = np.zeros((4, 10), dtype=int)
    counts[0, :5] = 10  # plane 0: one holder (5 classes) and an empty neighbour
    counts[2, :] = 10  # plane 1: one holder (10 classes) and an empty neighbour
    planes = np.array([0, 0, 1, 1])
    stats = partition_stats(counts, planes)
    assert stats["classes_with_5pct_mean"] == 7.5  # the empty satellites are not zeros
    assert stats["images_per_satellite"] == [50, 100]
    assert stats["l1_neighbour_in_plane"] is None  # no plane has two holders
    assert stats["l1_same_slot_next_plane"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no satellite holds any image"):
        partition_stats(np.zeros((4, 10), dtype=int), planes)
