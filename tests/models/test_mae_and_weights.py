"""MAE pre-training mechanics and loading pre-trained weights into the split model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from research.models import MaskedAutoencoder, build_backbone, load_backbone_weights, patchify
from research.tasks import ClassificationTask, MAEPretrainTask


def test_patchify_follows_token_order() -> None:
    x = torch.arange(1 * 3 * 16 * 16, dtype=torch.float32).view(1, 3, 16, 16)
    p = patchify(x, 8)
    assert p.shape == (1, 4, 8 * 8 * 3)
    assert torch.equal(p[0, 1].view(8, 8, 3).permute(2, 0, 1), x[0, :, :8, 8:])


def test_mask_ratio_and_loss_decreases() -> None:
    torch.manual_seed(0)
    mae = MaskedAutoencoder(build_backbone("satvit_tiny", num_classes=0), decoder_dim=32, decoder_depth=1)
    keep, mask = mae.random_mask(4, 64, torch.device("cpu"))
    assert keep.shape == (4, 16) and mask.sum(dim=1).tolist() == [48.0] * 4
    x = torch.randn(8, 3, 64, 64).cumsum(dim=-1) / 10  # smooth images are predictable
    opt = torch.optim.AdamW(mae.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss = mae(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5])
    with pytest.raises(ValueError, match="mask_ratio=1.0"):
        MaskedAutoencoder(build_backbone("satvit_tiny", num_classes=0), mask_ratio=1.0)


def test_mae_encoder_weights_load_into_the_classifier(tmp_path: Path) -> None:
    task = MAEPretrainTask(backbone="satvit_tiny", decoder_dim=32, decoder_depth=1)
    torch.nn.init.normal_(task.model.encoder.blocks[0].attn.qkv.weight)
    path = tmp_path / "mae.pt"
    torch.save({k: v.half() for k, v in task.encoder_state_dict().items()}, path)
    clf = ClassificationTask(backbone="satvit_tiny", pretrained=str(path), finetune="head")
    expected = task.model.encoder.blocks[0].attn.qkv.weight.half().float()
    assert torch.equal(clf.model.vit.blocks[0].attn.qkv.weight, expected)
    # A Lightning checkpoint of the MAE task works too.
    ckpt = tmp_path / "mae.ckpt"
    torch.save({"state_dict": task.state_dict()}, ckpt)
    vit = build_backbone("satvit_tiny")
    missing = load_backbone_weights(vit, ckpt)
    assert set(missing) == {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"} - {
        k for k in task.encoder_state_dict()
    }


def test_weights_of_another_architecture_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "small.pt"
    torch.save(build_backbone("satvit_small").state_dict(), path)
    with pytest.raises(ValueError, match="do not fit this backbone"):
        load_backbone_weights(build_backbone("satvit_tiny"), path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_backbone_weights(build_backbone("satvit_tiny"), tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt"):
        load_backbone_weights(build_backbone("satvit_tiny"), tmp_path / "junk.pt")


def test_average_of_task_checkpoints_is_the_mean_of_their_weights() -> None:
    from research.models.weights import average_task_checkpoints

    torch.manual_seed(0)
    a, b = (ClassificationTask(backbone="satvit_tiny") for _ in range(2))
    ckpts = [{"state_dict": t.state_dict(), "epoch": e} for e, t in enumerate((a, b))]
    soup = average_task_checkpoints(ckpts)
    key = "model.vit.blocks.0.attn.qkv.weight"
    assert torch.allclose(soup["state_dict"][key], (a.state_dict()[key] + b.state_dict()[key]) / 2)
    assert soup["epoch"] == 0 and not torch.equal(soup["state_dict"][key], a.state_dict()[key])
    other = ClassificationTask(backbone="satvit_tiny", num_classes=5)
    with pytest.raises(ValueError, match="checkpoint 1 does not match"):
        average_task_checkpoints([ckpts[0], {"state_dict": other.state_dict()}])


def test_slim_checkpoint_keeps_the_normalisation_of_either_data_module() -> None:
    """Codecs trained on cached features save it under FeatureDataModule; a slim export without
    it could not classify images."""
    from research.models.weights import slim_task_checkpoint

    stats = {"mean": [0.3] * 3, "std": [0.2] * 3}
    for module in ("EuroSATDataModule", "FeatureDataModule"):
        slim = slim_task_checkpoint({"state_dict": {"w": torch.ones(1)}, module: stats,
                                     "optimizer_states": [{}]})
        assert slim[module] == stats and "optimizer_states" not in slim
