"""A tiny scenario: 2x4 Walker shell, 3 stations, 3 h; satvit_tiny checkpoint; 12 captures."""

from __future__ import annotations

import copy

import pytest
import torch

from research.eval.scenario import parse_scenario
from research.tasks import ClassificationTask

ORBIT = {
    "name": "tiny", "epoch": "2024-07-16T12:00:00Z", "duration_s": 10800, "step_s": 30,
    "constellation": {"walker": {"planes": 2, "sats_per_plane": 4, "altitude_km": 550,
                                 "inclination_deg": 53}},
    "stations": {"names": ["Matera", "Maspalomas", "Santiago"]},
    "isl": {"topology": "none"}, "eclipse": False,
}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A satvit_tiny classifier saved the way Lightning saves one (random weights suffice)."""
    torch.manual_seed(0)
    task = ClassificationTask(backbone="satvit_tiny", finetune="full")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict(),
                "EuroSATDataModule": {"mean": [0.34, 0.38, 0.41], "std": [0.2, 0.14, 0.12]}},
               path)
    return str(path)


@pytest.fixture
def raw_scenario(tiny_checkpoint, tmp_path) -> dict:
    return {
        "name": "tiny", "orbit": copy.deepcopy(ORBIT),
        "images": {"source": "embedded", "limit": 30},
        "captures": {"count": 12, "start_s": 60, "interval_s": 300, "seed": 1},
        "model": {"checkpoint": tiny_checkpoint, "split_index": 1, "head_placement": "ground"},
        "schemes": [
            {"name": "split-identity", "kind": "split", "link": "identity"},
            {"name": "split-int8", "kind": "split", "link": "int8"},
            {"name": "raw", "kind": "image", "format": "raw"},
            {"name": "jpeg", "kind": "image", "format": "jpeg", "quality": 80},
            {"name": "onboard", "kind": "onboard"},
        ],
        "profiles": {"satellite": "jetson_nano", "ground": "a100"},
        "out": str(tmp_path / "out"),
    }


@pytest.fixture
def scenario(raw_scenario):
    return parse_scenario(raw_scenario, "tiny.yaml")


@pytest.fixture(scope="session")
def tiny_spiking_checkpoint(tmp_path_factory) -> str:
    """A satvit_tiny CodecTask cut after block 1: that block spiking (SSA, T=2), the spike link."""
    from research.tasks.codec import CodecTask

    torch.manual_seed(0)
    task = CodecTask(backbone="satvit_tiny", split_index=1, codec="spike", latent_dim=4,
                     num_steps=2, spiking_blocks=[0], block_steps=2)
    task.calibrate(torch.randn(8, 3, 64, 64))
    path = tmp_path_factory.mktemp("ckpt") / "tiny_snn.ckpt"
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict(),
                "EuroSATDataModule": {"mean": [0.34, 0.38, 0.41], "std": [0.2, 0.14, 0.12]}},
               path)
    return str(path)
