"""EuroSATDataModule on generated data: loading, splits, normalisation, augmentation, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from research.data import EUROSAT_CLASSES, EuroSATDataModule, load_image_folder
from research.data.splits import load_split, stratified_split
from research.data.transforms import normalize, random_dihedral


def test_loads_fake_imagefolder(fake_root: Path) -> None:
    data = load_image_folder(fake_root, progress=False)
    assert data.images.shape == (60, 3, 64, 64) and data.images.dtype == torch.uint8
    assert torch.bincount(data.labels).tolist() == [6] * 10
    assert data.names[0] == "AnnualCrop/AnnualCrop_1.jpg"


def test_split_is_stratified_disjoint_and_reproducible(tmp_path: Path) -> None:
    labels = np.repeat(np.arange(10), 50)
    a = stratified_split(labels, (0.6, 0.2, 0.2), seed=3)
    b = stratified_split(labels, (0.6, 0.2, 0.2), seed=3)
    c = stratified_split(labels, (0.6, 0.2, 0.2), seed=4)
    assert a.digest() == b.digest() != c.digest()
    all_idx = np.concatenate([a.train, a.val, a.test])
    assert len(np.unique(all_idx)) == len(labels) == len(all_idx)
    assert np.bincount(labels[a.test]).tolist() == [10] * 10


def test_split_file_round_trip(fake_root: Path, tmp_path: Path) -> None:
    split_file = tmp_path / "split.json"
    dm = EuroSATDataModule(root=str(fake_root), split_file=str(split_file), split_seed=7)
    dm.setup()
    assert split_file.exists()
    again = load_split(split_file, dm.data.names)
    assert again.digest() == dm.split.digest()
    other = EuroSATDataModule(root=str(fake_root), split_file=str(split_file), split_seed=99)
    other.setup()  # the recorded split wins over the seed
    assert other.split.digest() == dm.split.digest()


def test_normalisation_uses_train_split(fake_root: Path) -> None:
    dm = EuroSATDataModule(root=str(fake_root), batch_size=8)
    dm.setup()
    train = dm.subset("train").tensors[0]
    x = normalize(train, dm.mean, dm.std)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)
    images, labels = dm.prepare_batch(next(iter(dm.train_dataloader())), train=True)
    assert images.dtype == torch.float32 and images.shape == (8, 3, 64, 64) and labels.shape == (8,)


def test_dihedral_augmentation_only_permutes_pixels() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    y = random_dihedral(x, torch.Generator().manual_seed(0))
    for a, b in zip(x, y, strict=True):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)
    seen = {random_dihedral(x[:1], torch.Generator().manual_seed(s)).flatten().tolist().__str__() for s in range(40)}
    assert len(seen) == 8  # all symmetries of the square occur


def test_embedded_subset_is_real_and_stratified() -> None:
    dm = EuroSATDataModule(root=None)
    dm.setup()
    assert len(dm.data) == 1000
    assert torch.bincount(dm.data.labels).tolist() == [100] * 10
    assert dm.data.classes == EUROSAT_CLASSES
    assert all(n.split("/")[0] == EUROSAT_CLASSES[int(lab)] for n, lab in zip(dm.data.names, dm.data.labels, strict=True))


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        EuroSATDataModule(root=str(tmp_path / "nowhere")).setup()


def test_unexpected_class_folder(fake_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(fake_root, tmp_path / "copy"))
    (root / "Clouds").mkdir()
    with pytest.raises(ValueError, match="unexpected class folders.*Clouds"):
        load_image_folder(root, progress=False)


def test_missing_class_folder(fake_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(fake_root, tmp_path / "copy"))
    shutil.rmtree(root / "River")
    with pytest.raises(FileNotFoundError, match="River"):
        load_image_folder(root, progress=False)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_image_names_the_file(fake_root: Path, tmp_path: Path, damage: str) -> None:
    root = Path(shutil.copytree(fake_root, tmp_path / "copy"))
    bad = root / "Forest" / "Forest_3.jpg"
    blob = bad.read_bytes()
    bad.write_bytes(b"not an image" if damage == "garbage" else blob[: len(blob) // 3])
    with pytest.raises(ValueError, match="Forest_3.jpg"):
        load_image_folder(root, progress=False)


def test_wrong_image_size_is_rejected(fake_root: Path, tmp_path: Path) -> None:
    from PIL import Image

    root = Path(shutil.copytree(fake_root, tmp_path / "copy"))
    Image.new("RGB", (32, 32)).save(root / "Pasture" / "Pasture_1.jpg")
    with pytest.raises(ValueError, match="Pasture_1.jpg.*expected 64x64"):
        load_image_folder(root, progress=False)


def test_sixteen_bit_image_is_refused_not_clipped(tmp_path: Path) -> None:
    """Pillow's RGB conversion clips 16-bit samples to 255: a constant image, unless refused."""
    from PIL import Image

    from research.data.imagefolder import decode_image

    path = tmp_path / "band.png"
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    with pytest.raises(ValueError, match="band.png.*16-bit or float.*scale it to uint8"):
        decode_image(path)


def test_cache_follows_the_files_and_survives_damage(fake_root: Path, tmp_path: Path) -> None:
    """A replaced image gives a new cache key (no stale pixels); an unreadable cache is named in
    a warning and rebuilt."""
    from PIL import Image

    root = tmp_path / "tree"
    shutil.copytree(fake_root, root)
    cache = tmp_path / "cache"
    first = load_image_folder(root, cache_dir=cache, progress=False)
    name = first.names[0]
    Image.new("RGB", (64, 64), (255, 0, 0)).save(root / name)  # the file changes, its name not
    again = load_image_folder(root, cache_dir=cache, progress=False)
    r, g, b = again.images[0, :, 32, 32].tolist()
    assert r > 240 and g < 15 and b < 15  # the new (red, JPEG-coded) pixels, not the cached ones
    assert torch.equal(again.images[1:], first.images[1:])
    (newest,) = sorted(cache.glob("*.npz"), key=lambda p: p.stat().st_mtime_ns)[-1:]
    newest.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unreadable.*rebuilding"):
        rebuilt = load_image_folder(root, cache_dir=cache, progress=False)
    assert torch.equal(rebuilt.images, again.images)
