"""The real loader on the full EuroSAT copy in ../shared/data (skipped where it is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from research.data import EUROSAT_CLASSES, EuroSATDataModule
from research.data.imagefolder import decode_image, list_image_files
from research.data.splits import load_split
from research.paths import REPO_ROOT, eurosat_dir

SPLIT_FILE = REPO_ROOT / "research" / "data" / "splits" / "eurosat_rgb_seed0.json"
EXPECTED = [3000, 3000, 3000, 2500, 2500, 2000, 2500, 3000, 2500, 3000]

pytestmark = pytest.mark.skipif(not eurosat_dir().is_dir(), reason="full EuroSAT copy not present")


def test_full_listing_matches_published_counts() -> None:
    files = list_image_files(eurosat_dir())
    counts = np.bincount([label for _, label in files]).tolist()
    assert counts == EXPECTED and len(files) == 27000


def test_one_real_image_per_class_decodes() -> None:
    for name in EUROSAT_CLASSES:
        img = decode_image(eurosat_dir() / name / f"{name}_1.jpg")
        assert img.shape == (64, 64, 3) and img.std() > 1


def test_committed_split_matches_the_data() -> None:
    names = tuple(rel for rel, _ in list_image_files(eurosat_dir()))
    split = load_split(SPLIT_FILE, names)
    assert (len(split.train), len(split.val), len(split.test)) == (18900, 2700, 5400)
    labels = np.array([EUROSAT_CLASSES.index(n.split("/")[0]) for n in names])
    assert np.bincount(labels[split.test]).tolist() == [c // 5 for c in EXPECTED]


def test_embedded_subset_comes_from_the_test_split() -> None:
    names = tuple(rel for rel, _ in list_image_files(eurosat_dir()))
    test_names = {names[i] for i in load_split(SPLIT_FILE, names).test}
    dm = EuroSATDataModule(root=None)
    assert set(dm.load().names) <= test_names


@pytest.mark.slow
def test_full_datamodule_loads_all_images() -> None:
    dm = EuroSATDataModule(root=str(eurosat_dir()), split_file=str(SPLIT_FILE))
    dm.setup()
    assert len(dm.data) == 27000 and len(dm.subset("test")) == 5400
