"""The ladder's headroom for a per-capture policy, on hand-made sweep rows."""

from __future__ import annotations

import math

import pytest

from research.eval.policy_headroom import fixed_frontier, ladder_headroom, least_bytes_at


def fixed(name, acc, p95, size, load=4.0):
    return {"per_orbit": load, "floor": None, "policy": name, "kind": "fixed", "objective": "",
            "expected_accuracy": acc, "latency_p95_all_s": p95, "bytes_per_tile": size}


def greedy(floor, p95, size, load=4.0):
    return {"per_orbit": load, "floor": floor, "policy": f"greedy@{floor}", "kind": "greedy",
            "objective": "latency", "expected_accuracy": floor, "latency_p95_all_s": p95,
            "bytes_per_tile": size}


LADDER = [fixed("q75", 0.92, 10.0, 1000), fixed("q80", 0.94, 12.0, 1100),
          fixed("q85", 0.96, 16.0, 1300), fixed("slow", 0.93, 30.0, 5000),  # dominated by q80
          fixed("lost", 0.99, math.inf, 9000)]  # loses scenes: no finite p95


def test_the_frontier_drops_dominated_and_unfinished_schemes():
    assert [r["policy"] for r in fixed_frontier(LADDER)] == ["q75", "q80", "q85"]


def test_least_bytes_interpolate_the_hull_at_the_floor():
    frontier = fixed_frontier(LADDER)
    assert least_bytes_at(frontier, 0.95) == pytest.approx(1100 + 0.5 * 200)
    assert least_bytes_at(frontier, 0.94) == pytest.approx(1100)  # one option alone
    assert least_bytes_at(frontier, 0.97) == math.inf
    # a mix of the extremes costs more than one of the neighbours: the hull takes the least
    assert least_bytes_at(frontier, 0.93) == pytest.approx(1050)


def test_headroom_is_the_lower_neighbours_p95_against_the_best_fixed():
    (entry,) = ladder_headroom([*LADDER, greedy(0.95, 14.0, 1210)])
    assert entry["best_fixed"] == "q85" and entry["lower_neighbour"] == "q80"
    assert entry["headroom"] == pytest.approx(1 - 12 / 16)
    assert entry["greedy_p95_reduction"] == pytest.approx(1 - 14 / 16)
    assert entry["greedy_share_of_headroom"] == pytest.approx((2 / 16) / (4 / 16))
    assert entry["least_bytes_per_tile"] == pytest.approx(1200)
    assert entry["greedy_bytes_per_tile"] == 1210


def test_a_floor_at_the_bottom_of_the_ladder_has_no_headroom_and_one_above_it_no_comparison():
    (bottom,) = ladder_headroom([*LADDER, greedy(0.90, 10.0, 1000)])
    assert bottom["best_fixed"] == "q75" and "headroom" not in bottom
    assert ladder_headroom([*LADDER, greedy(0.98, 10.0, 1000)]) == [
        {"per_orbit": 4.0, "floor": 0.98, "best_fixed": None}]


def test_a_greedy_policy_that_loses_scenes_has_no_reduction():
    (entry,) = ladder_headroom([*LADDER, greedy(0.95, math.inf, 1200)])
    assert entry["greedy_p95_reduction"] is None and "greedy_share_of_headroom" not in entry
