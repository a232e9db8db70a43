"""``scripts/export_checkpoint.py``: slim fp16 export, manifest entry, and rewriting saved paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from research.paths import REPO_ROOT

SCRIPT = str(REPO_ROOT / "scripts" / "export_checkpoint.py")


def _training_checkpoint(path: Path) -> Path:
    torch.save({
        "state_dict": {"model.w": torch.ones(2, 2)},
        "optimizer_states": [{"big": torch.zeros(1000)}],
        "hyper_parameters": {"backbone": "satvit_tiny", "pretrained": "/tmp/gpu/foundation.pt"},
        "datamodule_hyper_parameters": {"root": "/tmp/eurosat_rgb", "batch_size": 8},
        "epoch": 3,
    }, path)
    return path


def _export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_export_rewrites_saved_paths_and_records_the_file(tmp_path: Path) -> None:
    source, target = _training_checkpoint(tmp_path / "gpu.ckpt"), tmp_path / "out" / "model.ckpt"
    done = _export("task", str(source), str(target), "--set", "pretrained=checkpoints/x.pt",
                   "--set-data", "root=../shared/data/eurosat_rgb", "--set-data", "batch_size=16")
    assert done.returncode == 0, done.stderr
    slim = torch.load(target, weights_only=False)
    assert slim["hyper_parameters"] == {"backbone": "satvit_tiny", "pretrained": "checkpoints/x.pt"}
    assert slim["datamodule_hyper_parameters"] == {"root": "../shared/data/eurosat_rgb", "batch_size": 16}
    assert slim["state_dict"]["model.w"].dtype == torch.float16 and "optimizer_states" not in slim
    entry = json.loads((target.parent / "manifest.json").read_text())["model.ckpt"]
    assert entry["epoch"] == 3 and entry["bytes"] == target.stat().st_size


def test_export_refuses_a_hyperparameter_the_checkpoint_lacks(tmp_path: Path) -> None:
    source = _training_checkpoint(tmp_path / "gpu.ckpt")
    done = _export("task", str(source), str(tmp_path / "out.ckpt"), "--set", "pretraned=checkpoints/x.pt")
    assert done.returncode != 0
    assert "pretraned" in done.stderr and "pretrained" in done.stderr
    assert not (tmp_path / "out.ckpt").exists()


def test_codec_export_keeps_the_link_float32(tmp_path: Path) -> None:
    """The entropy coder's weights must stay exact; the rest of the model goes fp16."""
    source = tmp_path / "codec.ckpt"
    torch.save({"state_dict": {"model.vit.w": torch.ones(2), "model.link.entropy_bottleneck.q": torch.ones(3)},
                "hyper_parameters": {"codec": "factorized"}}, source)
    done = _export("codec", str(source), str(tmp_path / "out.ckpt"))
    assert done.returncode == 0, done.stderr
    state = torch.load(tmp_path / "out.ckpt", weights_only=False)["state_dict"]
    assert state["model.vit.w"].dtype == torch.float16
    assert state["model.link.entropy_bottleneck.q"].dtype == torch.float32
    assert json.loads((tmp_path / "manifest.json").read_text())["out.ckpt"]["kind"] == "codec"
