"""FeatureDataModule: cached outputs of a frozen prefix equal the prefix on the same images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from research.data import EuroSATDataModule
from research.data.features import FeatureDataModule, dihedral_view, weights_key


def _dm(root: Path) -> EuroSATDataModule:
    return EuroSATDataModule(root=str(root), batch_size=8)


def _mean_colour(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3))


def test_features_equal_the_prefix_on_each_split(fake_root: Path, tmp_path: Path) -> None:
    dm = _dm(fake_root)
    fdm = FeatureDataModule(dm, _mean_colour, "mean", cache_dir=tmp_path, progress=False)
    fdm.setup()
    for name in ("train", "val", "test"):
        raw, labels = dm.subset(name).tensors
        images, _ = dm.prepare_batch([raw, labels], train=False)
        feats, labs = fdm.data[name].tensors
        torch.testing.assert_close(feats, _mean_colour(images))
        assert torch.equal(labs, labels)


def test_cache_is_reused_without_calling_the_prefix(fake_root: Path, tmp_path: Path) -> None:
    calls = []

    def prefix(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return _mean_colour(x)

    FeatureDataModule(_dm(fake_root), prefix, "mean", cache_dir=tmp_path, progress=False).setup()
    assert calls
    calls.clear()
    again = FeatureDataModule(_dm(fake_root), prefix, "mean", cache_dir=tmp_path, progress=False)
    again.setup()
    assert calls == []
    batch = next(iter(again.train_dataloader()))
    assert batch[0].shape == (8, 3)


def test_train_views_multiply_the_training_set_only(fake_root: Path, tmp_path: Path) -> None:
    dm = _dm(fake_root)
    fdm = FeatureDataModule(dm, lambda x: x[:, :, 0, :4], "row", train_views=3, cache_dir=tmp_path,
                            progress=False)
    fdm.setup()
    n_train = len(dm.subset("train"))
    assert len(fdm.data["train"]) == 3 * n_train
    assert len(fdm.data["test"]) == len(dm.subset("test"))
    # the second view is the first rotated by 90 degrees, so its first row differs
    assert not torch.equal(fdm.data["train"].tensors[0][:n_train], fdm.data["train"].tensors[0][n_train:2 * n_train])


def test_float16_storage_comes_out_as_float32(fake_root: Path, tmp_path: Path) -> None:
    fdm = FeatureDataModule(_dm(fake_root), _mean_colour, "mean16", dtype=torch.float16,
                            cache_dir=tmp_path, progress=False)
    fdm.setup()
    assert fdm.data["train"].tensors[0].dtype == torch.float16
    batch = fdm.on_after_batch_transfer(next(iter(fdm.val_dataloader())), 0)
    assert batch[0].dtype == torch.float32


def test_dihedral_views_are_the_eight_symmetries() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    views = [dihedral_view(x, v) for v in range(8)]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert torch.equal(views[0], x)
    with pytest.raises(ValueError, match="view=8"):
        dihedral_view(x, 8)


def test_bad_view_count_and_key(tmp_path: Path, fake_root: Path) -> None:
    with pytest.raises(ValueError, match="train_views=9"):
        FeatureDataModule(_dm(fake_root), _mean_colour, "x", train_views=9)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"abc")
    key = weights_key(weights, "pooled")
    assert key.startswith("w-") and key.endswith("-pooled")
    weights.write_bytes(b"abd")
    assert weights_key(weights, "pooled") != key


def test_checkpoints_carry_the_image_normalisation(fake_root: Path, tmp_path: Path) -> None:
    dm = _dm(fake_root)
    fdm = FeatureDataModule(dm, _mean_colour, "mean", cache_dir=tmp_path, progress=False)
    state = fdm.state_dict()
    assert state["mean"] == dm.mean and state["split_digest"] == dm.split.digest()
