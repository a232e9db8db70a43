"""Reading the EuroSAT ImageFolder layout into one uint8 tensor, with checks that name the bad input.

EuroSAT is small (27,000 x 64 x 64 x 3 bytes = 332 MB decoded), so we decode it once and keep it in
memory (and in an on-disk cache); batches are then plain tensor indexing, which keeps 2-core CPU
training from being bound by JPEG decoding.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from research.atomic import atomic_write_bytes

EUROSAT_CLASSES: tuple[str, ...] = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageSet:
    """Decoded images ``[N, C, H, W]`` uint8, integer labels and the relative file names."""

    images: torch.Tensor
    labels: torch.Tensor
    names: tuple[str, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def list_image_files(root: Path, classes: tuple[str, ...] = EUROSAT_CLASSES) -> list[tuple[str, int]]:
    """Relative paths and labels of every image under ``root/<class>/``, sorted for determinism.

    Raises:
        FileNotFoundError: ``root`` or one of the expected class folders is missing.
        ValueError: ``root`` holds a folder that is not one of ``classes``, or a class folder is empty.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"EuroSAT root {str(root)!r} does not exist; expected a folder with one sub-folder per "
            f"class ({', '.join(classes)}), or pass download=True"
        )
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unexpected = sorted(set(found) - set(classes))
    if unexpected:
        raise ValueError(
            f"EuroSAT root {str(root)!r} has unexpected class folders {unexpected}; "
            f"expected only {list(classes)}"
        )
    missing = sorted(set(classes) - set(found))
    if missing:
        raise FileNotFoundError(
            f"EuroSAT root {str(root)!r} lacks class folders {missing}; expected {list(classes)}"
        )
    files: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        members = sorted(
            f.name for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES
        )
        if not members:
            raise ValueError(f"class folder {str(root / name)!r} holds no images ({IMAGE_SUFFIXES})")
        files.extend((f"{name}/{m}", label) for m in members)
    return files


WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
"""Pillow modes wider than 8 bits per sample, which ``convert("RGB")`` would clip."""


def decode_image(path: Path, size: int = 64) -> np.ndarray:
    """Decode one image to ``[H, W, 3]`` uint8, naming the file when it is corrupt or the wrong size."""
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            rgb = im.convert("RGB") if mode not in WIDE_MODES else None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot decode image {str(path)!r}: {err}; expected a readable image") from err
    if rgb is None:  # Pillow clips 16-bit and float samples to 255: a constant image, silently
        raise ValueError(f"image {str(path)!r} has {mode!r} samples (16-bit or float); expected "
                         "8-bit RGB or greyscale, so scale it to uint8 first")
    if rgb.size != (size, size):
        raise ValueError(f"image {str(path)!r} is {rgb.size[0]}x{rgb.size[1]}; expected {size}x{size}")
    return np.asarray(rgb, dtype=np.uint8)


def _cache_path(root: Path, files: list[tuple[str, int]], cache_dir: Path, size: int = 64) -> Path:
    """Cache file named by the tree's content: every file's name, label, byte size and
    modification time (a replaced or emptied image gives a new key) and the decoded size."""
    digest = hashlib.sha256()
    digest.update(f"{root.resolve()}:{size}\n".encode())
    for rel, label in files:
        st = (root / rel).stat()
        digest.update(f"{rel}:{label}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return cache_dir / f"imagefolder-{digest.hexdigest()[:16]}.npz"


def _read_cache(cache: Path, n: int, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, or ``None`` (with a warning naming the file) if it is unreadable or
    does not hold ``n`` images of ``size``; the caller then rebuilds it."""
    try:
        with np.load(cache) as data:
            images, labels = data["images"], data["labels"]
    except Exception as err:  # noqa: BLE001 - any damage: rebuild, and say so
        warnings.warn(f"image cache {cache} is unreadable ({type(err).__name__}: {err}); "
                      "rebuilding it", stacklevel=3)
        return None
    if images.shape != (n, size, size, 3) or labels.shape != (n,):
        warnings.warn(f"image cache {cache} holds {images.shape}, expected {(n, size, size, 3)}; "
                      "rebuilding it", stacklevel=3)
        return None
    return images, labels


def default_cache_dir() -> Path:
    """``$SATEDGE_CACHE`` or ``~/.cache/satedge``: where decoded data sets are kept between runs."""
    return Path(os.environ.get("SATEDGE_CACHE", Path.home() / ".cache" / "satedge"))


def load_image_folder(
    root: str | Path,
    classes: tuple[str, ...] = EUROSAT_CLASSES,
    size: int = 64,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> ImageSet:
    """Decode a whole ImageFolder tree (checked), using an on-disk cache keyed by the files'
    names, sizes and modification times (rebuilt when stale or unreadable)."""
    root = Path(root)
    files = list_image_files(root, classes)
    cache = _cache_path(root, files, Path(cache_dir) if cache_dir else default_cache_dir(), size)
    cached = _read_cache(cache, len(files), size) if cache.exists() else None
    if cached is not None:
        images, labels = cached
    else:
        images = np.empty((len(files), size, size, 3), dtype=np.uint8)
        for i, (rel, _) in enumerate(
            tqdm(files, desc=f"decoding {root.name}", disable=not progress, leave=False)
        ):
            images[i] = decode_image(root / rel, size)
        labels = np.array([label for _, label in files], dtype=np.int64)
        cache.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, images=images, labels=labels)
        atomic_write_bytes(buf.getvalue(), cache)
    return ImageSet(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        labels=torch.from_numpy(labels),
        names=tuple(rel for rel, _ in files),
        classes=classes,
    )
