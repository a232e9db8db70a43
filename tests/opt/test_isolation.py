"""The isolation bound on a latency percentile: exact against brute force, and its errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from research.opt.isolation import percentile_bound


def brute_force(latency: np.ndarray, accuracy: np.ndarray, floor: float, mode: str, q: float
                ) -> float:
    """Every assignment of options: the least percentile among those keeping the floor."""
    best = math.inf
    n, k = latency.shape
    for choice in itertools.product(range(k), repeat=n):
        acc = accuracy[list(choice)]
        if (mode == "capture" and (acc < floor).any()) or (mode == "mean" and acc.mean() < floor - 1e-12):
            continue
        lat = latency[np.arange(n), list(choice)]
        best = min(best, float(np.percentile(lat, q, method="higher")))
    return best


@pytest.mark.parametrize("mode", ["mean", "capture"])
@pytest.mark.parametrize("q", [50, 95])
def test_the_bound_is_the_least_percentile_of_any_assignment_keeping_the_floor(mode, q):
    rng = np.random.default_rng(0)
    for _ in range(40):
        n, k = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        latency = rng.choice([1.0, 2.0, 3.0, 5.0, 8.0, 13.0, math.inf], size=(n, k))
        accuracy = rng.uniform(0.8, 1.0, size=k)
        floor = float(rng.uniform(0.8, accuracy.max()))
        assert percentile_bound(latency, accuracy, floor, mode, q) == brute_force(
            latency, accuracy, floor, mode, q)


def test_a_worked_example_trades_accuracy_for_speed_only_as_far_as_the_mean_allows():
    latency = np.array([[1.0, 5.0], [2.0, 6.0], [10.0, 3.0]])
    accuracy = np.array([0.90, 0.99])
    # every scene on the accurate option: 3, 5, 6
    assert percentile_bound(latency, accuracy, 0.95, "capture", 95) == 6.0
    assert percentile_bound(latency, accuracy, 0.95, "capture", 50) == 5.0
    # a mean of 0.96 lets one scene (scene 1) take the fast option: 5 at p95
    assert percentile_bound(latency, accuracy, 0.96, "mean", 95) == 5.0
    # a mean of 0.90 lets every scene take its fastest: 1, 2, 3
    assert percentile_bound(latency, accuracy, 0.90, "mean", 95) == 3.0


def test_too_few_scenes_answered_even_alone_is_an_infinite_bound():
    latency = np.array([[math.inf, 4.0], [math.inf, math.inf]])
    assert percentile_bound(latency, np.array([0.9, 0.8]), 0.85, "capture", 50) == math.inf
    assert percentile_bound(latency, np.array([0.9, 0.8]), 0.8, "mean", 95) == math.inf
    assert percentile_bound(latency, np.array([0.9, 0.8]), 0.95, "mean", 95) == math.inf


def test_bad_input_names_what_was_expected():
    with pytest.raises(ValueError, match=r"latency must be \[captures, options\] with one column per accuracy \(3\)"):
        percentile_bound(np.ones((2, 2)), np.ones(3), 0.5)
    with pytest.raises(ValueError, match="floor_mode must be one of"):
        percentile_bound(np.ones((2, 2)), np.ones(2), 0.5, "median")
    with pytest.raises(ValueError, match="q must be a percentile in"):
        percentile_bound(np.ones((2, 2)), np.ones(2), 0.5, "mean", 101)


def test_isolated_latency_is_compute_transfer_and_ground_in_closed_form():
    from research.opt.isolation import isolated_latencies
    from research.orbit.isl import KIND_GROUND
    from research.orbit.network import NetworkResources
    from research.workload import Capture
    from tests.orbit.toy import DELAY, toy_plan

    # one satellite always in view of one station (1 MB/s), then a pass from 5,000 s
    plan = toy_plan({(0, 1, KIND_GROUND): [(0.0, 1000.0), (5000.0, 6000.0)]}, n_sat=1, n_gs=1)
    caps = [Capture(index=0, satellite="s0", t_s=100.0, tiles=1, sample=(0,)),
            Capture(index=1, satellite="s0", t_s=999.0, tiles=1, sample=(0,))]
    payload = np.array([[2e6, 1e3], [2e6, 1e3]])  # bytes down per scene
    compute = np.array([[0.0, 30.0], [0.0, 30.0]])  # on board before sending
    ground = np.array([[4.0, 0.0], [4.0, 0.0]])
    got = isolated_latencies(plan, NetworkResources(), caps, payload, compute, ground)
    assert got[0, 0] == pytest.approx(2.0 + DELAY + 4.0)  # 2 MB at 1 MB/s, then the ground
    assert got[0, 1] == pytest.approx(30.0 + 1e-3 + DELAY)  # compute first, then 1 kB
    # at 999 s the window closes mid-transfer: the second MB waits for the pass at 5,000 s
    assert got[1, 0] == pytest.approx(5001.0 - 999.0 + DELAY + 4.0)
    assert got[1, 1] == pytest.approx(5000.0 + 1e-3 - 999.0 + DELAY)  # ready after the window
    # a head on board: features go back up, the head runs, the answer comes down, each leg alone
    back = isolated_latencies(plan, NetworkResources(), caps[:1], np.array([[1e6]]),
                              np.array([[0.0]]), np.array([[1.0]]),
                              return_bytes=np.array([[5e5]]), return_compute_s=np.array([[2.0]]),
                              answer_bytes=np.array([[100.0]]))
    assert back[0, 0] == pytest.approx(1.0 + 1.0 + 0.5 + 2.0 + 1e-4 + 3 * DELAY)
    with pytest.raises(ValueError, match=r"compute_s must be \[captures, options\] = \[2, 2\]"):
        isolated_latencies(plan, NetworkResources(), caps, payload, compute[:1], ground)
