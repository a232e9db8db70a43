"""Serving fixtures: a tiny random encoder catalog and a tiny contact plan, built once."""

from __future__ import annotations

import pytest
import torch

from research.models import build_backbone
from research.orbit import IslConfig, TimeGrid, build_contact_plan, walker_delta
from research.orbit.stations import default_stations
from research.serving.tasks import build_catalog

EPOCH = "2024-07-16T12:00:00Z"
MEAN, STD = [0.34, 0.38, 0.41], [0.20, 0.14, 0.12]


@pytest.fixture(scope="session")
def vit():
    torch.manual_seed(0)
    return build_backbone("satvit_tiny", num_classes=10).eval()


@pytest.fixture(scope="session")
def catalog(vit):
    return build_catalog(vit, MEAN, STD, cuts=(1,))


@pytest.fixture(scope="session")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8, generator=g)


@pytest.fixture(scope="session")
def plan():
    """2 planes x 10 at 550 km (in-plane ISLs clear the Earth), 3 stations, 1 h at 20 s."""
    c = walker_delta(2, 10, 550.0, 53.0, epoch=EPOCH)
    st = default_stations(names=["Matera", "Kiruna", "Santiago"])
    return build_contact_plan(c, st, TimeGrid(EPOCH, 3600, 20), isl=IslConfig(topology="grid"))
