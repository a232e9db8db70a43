"""Compute profiles turn FLOPs into time and energy the same way for every package."""

import pytest

from research.compute import ComputeProfile, compute_profile, list_compute_profiles
from snn.profiles import list_profiles


def test_seconds_and_energy_follow_throughput_and_power():
    p = compute_profile("jetson_nano")
    assert p.seconds(p.effective_flops) == pytest.approx(1.0)
    assert p.energy_j(2 * p.effective_flops) == pytest.approx(2 * p.power_w)


def test_ground_is_faster_than_board():
    assert compute_profile("a100").seconds(1e12) < compute_profile("jetson_nano").seconds(1e12)


def test_every_profile_names_a_per_op_energy_profile():
    for name in list_compute_profiles():
        assert compute_profile(name).energy_profile in list_profiles()


def test_unknown_and_invalid_profiles_are_named():
    with pytest.raises(ValueError, match="unknown compute profile 'tpu'"):
        compute_profile("tpu")
    with pytest.raises(ValueError, match="utilisation"):
        ComputeProfile("x", 1e9, 1.5, 1.0, 1e9, "cmos45nm", "")
    with pytest.raises(ValueError, match="flops must be >= 0"):
        compute_profile("a100").seconds(-1)
