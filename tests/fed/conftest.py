"""Tiny federated scenario shared by the fed tests: 3 planes x 10 satellites, 3 stations, 6 h."""

from __future__ import annotations

import pytest

from research.fed.config import parse_config
from research.fed.runner import build_plan, prepare

SCENARIO = {
    "name": "fed_tiny",
    "epoch": "2024-07-16T12:00:00Z",
    "duration_s": 6 * 3600,
    "step_s": 30,
    "constellation": {"walker": {"planes": 3, "sats_per_plane": 10, "altitude_km": 550.0,
                                 "inclination_deg": 53.0, "phasing": 1, "kind": "delta"}},
    "stations": {"names": ["Kiruna", "Matera", "Maspalomas"]},
    "isl": {"topology": "grid"},
    "eclipse": False,
}


def tiny_raw(**overrides) -> dict:
    raw = {
        "name": "tiny",
        "scenario": SCENARIO,
        "model": {"backbone": "satvit_tiny", "weights": None},
        "data": {"max_images": 300, "alpha": 0.5},
        "train": {"rounds": 2, "local_epochs": 1, "batch_size": 16, "lr": 0.1},
    }
    raw.update(overrides)
    return raw


@pytest.fixture(scope="session")
def tiny_plan():
    return build_plan(SCENARIO)


@pytest.fixture(scope="session")
def tiny_setup(tiny_plan):
    return prepare(parse_config(tiny_raw()), plan=tiny_plan)


DAY_SCENARIO = {**SCENARIO, "name": "fed_tiny_1d_20gs", "duration_s": 24 * 3600,
                "stations": {"default": 20}}


@pytest.fixture(scope="session")
def tiny_day_setup():
    """The tiny shell over a day: star rounds under secure aggregation wait for several passes
    through the ground, more than the 6-h plan holds."""
    return prepare(parse_config(tiny_raw(scenario=DAY_SCENARIO)), plan=build_plan(DAY_SCENARIO))


GRID_SCENARIO = {**SCENARIO, "name": "fed_tiny_6x10",
                 "constellation": {"walker": {"planes": 6, "sats_per_plane": 10,
                                              "altitude_km": 550.0, "inclination_deg": 53.0,
                                              "phasing": 1, "kind": "delta"}}}


@pytest.fixture(scope="session")
def grid_setup():
    """6 planes x 10: close enough for intra- and inter-plane ISLs to join every satellite
    (gossip needs it; the 3 x 10 shell's planes are 120 deg apart and never meet)."""
    return prepare(parse_config(tiny_raw(scenario=GRID_SCENARIO)),
                   plan=build_plan(GRID_SCENARIO))
