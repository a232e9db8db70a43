"""The regime map's pieces: refused models, what-if devices, and the ratio flipping with
on-board compute on the tiny scenario."""

from __future__ import annotations

import dataclasses
import math

import pytest

from devices import get_device
from research.fed.config import parse_config
from research.fed.regime import ratios, simulate, target_rounds, what_if_device
from research.fed.rounds import ModelTooLarge
from research.fed.runner import run
from tests.fed.conftest import tiny_raw


@pytest.fixture(autouse=True)
def _what_if_devices_stay_here(monkeypatch):
    """What-if profiles register globally; keep them out of the other test modules."""
    from devices import profiles

    monkeypatch.setattr(profiles, "_DEVICES", dict(profiles._DEVICES))


def test_a_model_that_does_not_fit_on_board_is_refused_not_simulated(tiny_setup, tmp_path):
    big = dataclasses.replace(tiny_setup, costs=dataclasses.replace(
        tiny_setup.costs, encode_param_bytes=3 * 2**30))  # 3 GiB of encoder weights
    with pytest.raises(ModelTooLarge, match="'onboard'.*needs 30\\d\\d MiB.*jetson_nano has 2048"):
        run(parse_config(tiny_raw(out_dir=str(tmp_path / "o"), scheme="onboard")), setup=big)
    # the split keeps the encoder on the ground: it runs
    rows = run(parse_config(tiny_raw(out_dir=str(tmp_path / "c"))), setup=big).rows
    assert len(rows) == 2


def test_what_if_devices_scale_throughput_and_keep_memory():
    nano = get_device("jetson_nano")
    slow = get_device(what_if_device(0.25))
    assert slow.name == "jetson_nano_x0.25" and what_if_device(0.25) == slow.name
    assert slow.effective_flops == pytest.approx(nano.effective_flops / 4)
    assert slow.memory_bytes == nano.memory_bytes and slow.power_w == nano.power_w
    assert what_if_device(1.0) == "jetson_nano"


def test_target_rounds_reads_the_first_round_within_a_point_of_the_final():
    rows = [{"round": i + 1, "accuracy": a} for i, a in enumerate([0.5, 0.78, 0.805, 0.8])]
    assert target_rounds(rows) == 3


def test_the_ratio_flips_when_on_board_compute_gets_slow(tiny_setup):
    cfg = parse_config(tiny_raw(comm={"reuse_features": False}))
    t = {}
    for factor in (1.0, 1e-7):
        device = what_if_device(factor)
        for scheme in ("collaborative", "onboard"):
            got = simulate(cfg, tiny_setup, tiny_setup.costs, tiny_setup.plan, 2, scheme,
                           "ring", device, False, "satvit_tiny")
            assert got["why"] == ""
            t[factor, scheme] = got["t_s"]
    assert t[1.0, "onboard"] < t[1.0, "collaborative"]  # a fast satellite: on board wins
    assert t[1e-7, "onboard"] > t[1e-7, "collaborative"]  # a crawling one: the split wins


def test_ratios_pick_each_schemes_best_and_mark_refusals():
    base = {"backbone": "b", "compute_factor": 1.0, "sat_tflops": 0.1, "reuse_features": True,
            "params_m": 1.0}
    rows = [{**base, "isls": "isl", "scheme": "collaborative", "topology": "ring", "t_s": 10.0},
            {**base, "isls": "isl", "scheme": "onboard", "topology": "ring", "t_s": 40.0},
            {**base, "isls": "no_isl", "scheme": "collaborative", "topology": "star",
             "t_s": 10.0},
            {**base, "isls": "no_isl", "scheme": "onboard", "topology": "star", "t_s": None}]
    got = {p["isls"]: p["ratio"] for p in ratios(rows)}
    assert got["isl"] == pytest.approx(0.25) and got["no_isl"] is None
    rows[0]["t_s"] = None
    assert math.isinf({p["isls"]: p["ratio"] for p in ratios(rows)}["isl"])


def test_over_seeds_means_finite_ratios_and_keeps_verdicts():
    from research.fed.regime import over_seeds

    def pt(ratio, backbone="b", tc=1.0, to=1.0):
        return {"backbone": backbone, "compute_factor": 1.0, "isls": "isl",
                "reuse_features": True, "ratio": ratio, "t_collaborative_s": tc,
                "t_onboard_s": to}
    got = {p["backbone"]: p for p in over_seeds({
        0: [pt(0.2, tc=2.0, to=10.0), pt(None, "huge")],
        1: [pt(0.4, tc=4.0, to=10.0), pt(None, "huge")]})}
    assert got["b"]["ratio"] == pytest.approx(0.3)
    assert got["b"]["ratio_std"] == pytest.approx(math.sqrt(0.02))
    assert got["b"]["ratio_seeds"] == [0.2, 0.4] and got["b"]["t_collaborative_s"] == 3.0
    assert got["huge"]["ratio"] is None and "ratio_std" not in got["huge"]


def test_the_regime_map_takes_each_seeds_own_rounds(tiny_setup, tmp_path):
    import json

    from research.fed.regime import regime_map

    def ledger(seed, accs):
        return [{"run": "collaborative", "seed": seed, "round": i + 1, "accuracy": a}
                for i, a in enumerate(accs)]
    rows = ledger(0, [0.5, 0.9, 0.9]) + ledger(1, [0.5, 0.6, 0.9])
    cfg = parse_config(tiny_raw(comm={"reuse_features": False}))
    points = regime_map(cfg, tiny_setup, rows, tmp_path, backbones=["satvit_tiny"],
                        factors=[1.0], isl_scenario=None, reuse=(False,), command="test",
                        seeds=(0, 1), setup_for_seed=lambda s: tiny_setup)
    summary = json.loads((tmp_path / "fed_regime_summary.json").read_text())
    assert summary["target_rounds_per_seed"] == {"0": 2, "1": 3}
    assert len(points) == 1 and len(points[0]["ratio_seeds"]) == 2
    assert (tmp_path / "fed_regime.png").is_file()
    with pytest.raises(ValueError, match="no rows of seed 2"):
        regime_map(cfg, tiny_setup, rows, tmp_path, backbones=["satvit_tiny"], factors=[1.0],
                   isl_scenario=None, reuse=(False,), command="test", seeds=(0, 2),
                   setup_for_seed=lambda s: tiny_setup)
