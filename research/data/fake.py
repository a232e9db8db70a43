"""A seeded generator of tiny fake EuroSAT-like data, for tests and smoke runs.

Each class gets its own base colour and stripe orientation plus noise, so a tiny model can learn
the classes within a few steps, while the files go through the same ImageFolder reader as the real
data set (JPEG or PNG on disk, one folder per class).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from research.data.imagefolder import EUROSAT_CLASSES


def fake_image(label: int, rng: np.random.Generator, size: int = 64, bands: int = 3) -> np.ndarray:
    """One ``[size, size, bands]`` uint8 image whose colour and stripes depend on ``label``."""
    base = np.array([(37 * label * (b + 1)) % 200 + 30 for b in range(bands)], dtype=np.float64)
    yy, xx = np.mgrid[0:size, 0:size]
    angle = np.pi * label / 10
    stripes = 40 * np.sin((np.cos(angle) * xx + np.sin(angle) * yy) / (2 + label % 3))
    img = base[None, None, :] + stripes[..., None] + rng.normal(0, 12, (size, size, bands))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_fake_eurosat(
    root: str | Path,
    per_class: int = 6,
    seed: int = 0,
    size: int = 64,
    classes: tuple[str, ...] = EUROSAT_CLASSES,
    fmt: str = "JPEG",
) -> Path:
    """Write ``per_class`` images for each class under ``root/<class>/<class>_<i>.jpg``; returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    suffix = ".jpg" if fmt.upper() == "JPEG" else ".png"
    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, per_class + 1):
            Image.fromarray(fake_image(label, rng, size)).save(folder / f"{name}_{i}{suffix}", fmt, quality=95)
    return root
