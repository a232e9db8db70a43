"""SpikingTask: trains on tiny data, rejects bad configs, pickles, and logs measured energy."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import torch

from research.cli import main
from research.paths import REPO_ROOT
from research.tasks.spiking import SpikingTask

SNN = REPO_ROOT / "experiments" / "snn"


def _tiny_batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable images: each class has its own mean colour."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 4
    images = torch.randn(n, 3, 64, 64, generator=g) * 0.3 + labels.view(-1, 1, 1, 1) - 1.5
    return images, labels


def test_training_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    task = SpikingTask(backbone="satvit_tiny", num_classes=4, num_steps=2, hidden=(32,),
                       rate_penalty=0.01, label_smoothing=0.0)
    batch = list(_tiny_batch())
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(15):
        loss = task.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    frozen = [n for n, p in task.named_parameters() if "blocks" in n]
    assert frozen and all(not task.get_parameter(n).requires_grad for n in frozen)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_steps": 0}, "T >= 1"),
        ({"surrogate": "boxcar"}, "fast_sigmoid"),
        ({"beta": -0.1}, "beta"),
        ({"threshold": 0.0}, "threshold"),
        ({"head": "transformer"}, "ann_mlp"),
        ({"finetune": "full"}, "frozen"),
        ({"spiking_blocks": [0]}, "not on board"),
        ({"init": "convert"}, "convert_from"),
        ({"rate_penalty": -1.0}, "rate_penalty"),
    ],
)
def test_bad_config_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpikingTask(backbone="satvit_tiny", **kwargs)


def test_named_surrogate_survives_save_and_load() -> None:
    torch.manual_seed(0)
    task = SpikingTask(backbone="satvit_tiny", num_steps=3, surrogate="sigmoid",
                       split_index=1, spiking_blocks=[0])
    task.eval()
    images, _ = _tiny_batch(4)
    buf = io.BytesIO()
    torch.save(task.model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    lif = loaded.vit.head.lifs[0]
    assert lif.spike_grad.name == "sigmoid"
    assert torch.allclose(loaded(images), task.model(images))
    loaded.train()
    loaded(images).sum().backward()  # the rebuilt surrogate still gives gradients
    assert loaded.vit.head.fcs[0].weight.grad.abs().sum() > 0


def test_convert_from_ann_mlp_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ann = SpikingTask(backbone="satvit_tiny", head="ann_mlp", hidden=(16,)).eval()
    ckpt = tmp_path / "ann.ckpt"
    torch.save({"state_dict": ann.state_dict()}, ckpt)
    snn = SpikingTask(backbone="satvit_tiny", head="spiking", hidden=(16,), init="convert",
                      convert_from=str(ckpt), num_steps=64).eval()
    snn.model.vit.load_state_dict(
        {k: v for k, v in ann.model.vit.state_dict().items() if "head" not in k and "fc_norm" not in k},
        strict=False,
    )
    images, _ = _tiny_batch(8)
    snn.calibrate(images)
    want, got = ann.model(images), snn.model(images)
    assert (want - got).abs().max() < 0.1 * want.std()  # the converted SNN tracks the ANN


def _metrics(root: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for path in root.rglob("metrics.csv"):
        for row in csv.DictReader(path.open()):
            out.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return out


def test_cli_test_logs_energy(fake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = [
        "--config", str(SNN / "base.yaml"), "--config", str(SNN / "t2.yaml"),
        "--model.init_args.backbone", "satvit_tiny", "--model.init_args.pretrained", "null",
        "--model.init_args.hidden", "[16]", "--model.init_args.split_index", "1",
        "--model.init_args.spiking_blocks", "[0]", "--model.init_args.calib_batches", "1",
        "--data.init_args.root", str(fake_root), "--data.init_args.batch_size", "8",
        "--data.init_args.split_file", str(tmp_path / "split.json"),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
        "--trainer.logger.init_args.save_dir", str(tmp_path),
    ]
    assert main(["fit", *args, "--trainer.fast_dev_run", "1"]) == 0
    assert main(["test", *args, "--trainer.limit_test_batches", "2"]) == 0
    logged = _metrics(tmp_path)
    for profile in ("cmos45nm", "loihi", "jetson_nano", "a100"):
        assert logged[f"test/energy_j_{profile}"] > logged[f"test/head_energy_j_{profile}"] > 0
    assert 0 <= logged["test/firing_rate_head_1_lifs_0"] <= 1
    assert 0 <= logged["test/firing_rate_blocks_0_mlp_lif"] <= 1
    assert "test/acc" in logged


def test_pretrained_classification_checkpoint_seeds_the_head_norm(tmp_path: Path) -> None:
    """The fine-tuned full checkpoint (``model.vit.*`` keys) loads; its fc_norm starts the SNN norm."""
    from research.tasks.classification import ClassificationTask

    torch.manual_seed(0)
    source = ClassificationTask(backbone="satvit_tiny", finetune="full")
    with torch.no_grad():
        source.model.vit.fc_norm.weight.uniform_(0.5, 1.5)
    ckpt = tmp_path / "full.ckpt"
    torch.save({"state_dict": source.state_dict()}, ckpt)
    task = SpikingTask(backbone="satvit_tiny", pretrained=str(ckpt))
    vit, ref = task.model.vit, source.model.vit
    assert torch.equal(vit.head.norm.weight, ref.fc_norm.weight)
    assert torch.equal(vit.blocks[0].attn.qkv.weight, ref.blocks[0].attn.qkv.weight)
    linear = SpikingTask(backbone="satvit_tiny", head="linear", pretrained=str(ckpt))
    assert torch.equal(linear.model.vit.head.weight, ref.head.weight)


def test_pooled_features_give_the_logits_of_images() -> None:
    torch.manual_seed(0)
    task = SpikingTask(backbone="satvit_tiny", num_classes=4, num_steps=2, hidden=(8,),
                       encoding="if").eval()
    images, _ = _tiny_batch(4)
    with torch.no_grad():
        features = task.model.ground_part(task.model.satellite_part(images))
        torch.testing.assert_close(task._logits(features), task._logits(images))
    with pytest.raises(ValueError, match="pooled features"):
        task._logits(features[:, :5])


def test_pooled_features_need_a_frozen_backbone() -> None:
    task = SpikingTask(backbone="satvit_tiny", num_classes=4, num_steps=2, hidden=(8,), finetune="lora")
    with pytest.raises(ValueError, match="frozen backbone"):
        task._logits(torch.randn(2, task.model.embed_dim))


def test_cli_if_input_yaml(fake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """experiments/snn/if_input.yaml: the spike-driven head trains and logs its encoder's rate."""
    monkeypatch.chdir(tmp_path)
    args = [
        "--config", str(SNN / "base.yaml"), "--config", str(SNN / "if_input.yaml"),
        "--model.init_args.backbone", "satvit_tiny", "--model.init_args.pretrained", "null",
        "--model.init_args.hidden", "[16]",
        "--data.init_args.root", str(fake_root), "--data.init_args.batch_size", "8",
        "--data.init_args.split_file", str(tmp_path / "split.json"),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
        "--trainer.logger.init_args.save_dir", str(tmp_path),
    ]
    assert main(["fit", *args, "--trainer.fast_dev_run", "1"]) == 0
    assert main(["test", *args, "--trainer.limit_test_batches", "1"]) == 0
    assert 0 <= _metrics(tmp_path)["test/firing_rate_head_1_encoder"] <= 1
