"""Shared fixtures: tiny generated EuroSAT-like data, offline W&B, an isolated decode cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from research.data.fake import write_fake_eurosat

os.environ["WANDB_MODE"] = "disabled"
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATEDGE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-class ImageFolder with 6 generated JPEGs per class (60 images)."""
    return write_fake_eurosat(tmp_path_factory.mktemp("fake_eurosat"), per_class=6, seed=0)
