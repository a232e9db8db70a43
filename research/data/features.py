"""Outputs of a frozen model prefix, computed once per data split and cached on disk.

Why: when the backbone is frozen, what reaches a trainable module (a codec at the cut, a task
head on the pooled features) is the same every epoch, so computing it once turns an epoch of
ViT forwards into an epoch of tensor slices. The sweep scripts train codecs and spiking heads
this way for tens of epochs on 2 CPU cores. Augmentation is kept by caching fixed dihedral views
of the training images (flips and 90-degree rotations, the augmentations of
:class:`~research.data.EuroSATDataModule`); the tasks accept such batches directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from research.atomic import atomic_save
from research.data.eurosat import EuroSATDataModule
from research.data.imagefolder import default_cache_dir

__all__ = ["FeatureDataModule", "dihedral_view", "extract_features", "weights_key"]

SPLITS = ("train", "val", "test")


def dihedral_view(images: torch.Tensor, view: int) -> torch.Tensor:
    """The ``view``-th of the 8 dihedral transforms of ``[B, C, H, W]`` images (0 = identity)."""
    if not 0 <= view < 8:
        raise ValueError(f"view={view}; expected 0..7 (4 rotations x optional flip)")
    out = torch.rot90(images, view % 4, dims=(-2, -1))
    return out.flip(-1) if view >= 4 else out


def weights_key(weights: str | Path, what: str) -> str:
    """A cache key naming ``what`` was computed from the weights file (its name and content hash)."""
    path = Path(weights)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"{path.stem}-{digest}-{what}"


def default_device() -> torch.device:
    """CUDA when there is a GPU, else the CPU: where a frozen prefix encodes a whole data set."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def extract_features(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: EuroSATDataModule,
    split: str,
    view: int = 0,
    batch_size: int = 256,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn`` on one dihedral ``view`` of a split's normalised images: ``(features, labels)``.

    Batches go to ``device`` (where ``fn``'s modules must be); features come back on the CPU.
    """
    raw, labels = images.subset(split).tensors
    chunks = []
    starts = range(0, len(raw), batch_size)
    for start in tqdm(starts, desc=f"{split} view {view}", disable=not progress, leave=False):
        batch = [dihedral_view(raw[start : start + batch_size], view), labels[start : start + batch_size]]
        x, _ = images.prepare_batch(batch, train=False)
        chunks.append(fn(x.to(device)).to(dtype).cpu())
    return torch.cat(chunks), labels


class FeatureDataModule(L.LightningDataModule):
    """Batches of ``(features, label)`` from a frozen prefix of the model, cached by ``key``.

    Args:
        images: The image data module whose train/val/test splits are encoded.
        fn: Frozen prefix, e.g. ``split_vit.satellite_part`` (tokens at the cut) or a function to
            pooled features; called on normalised images without gradients (put its modules in
            eval mode first).
        key: Names what ``fn`` computes (backbone, weights, cut); part of the cache file name,
            together with the split digest and the number of views. Change it when ``fn`` changes.
        train_views: Dihedral views of each training image (1..8); the others get view 0.
        batch_size: Batch size of the loaders (default: that of ``images``).
        dtype: Storage type (``float16`` halves the memory of token caches; batches come out
            as ``float32``).
        cache_dir: Where the cache lives (default ``$SATEDGE_CACHE/features``); ``None`` there too.
        progress: Show a bar while encoding.
        device: Where ``fn`` runs while encoding (its modules must be there already); e.g.
            :func:`default_device`. The cache does not depend on it.
    """

    def __init__(
        self,
        images: EuroSATDataModule,
        fn: Callable[[torch.Tensor], torch.Tensor],
        key: str,
        train_views: int = 1,
        batch_size: int | None = None,
        dtype: torch.dtype = torch.float32,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        if not 1 <= train_views <= 8:
            raise ValueError(f"train_views={train_views}; expected 1..8 dihedral views")
        self.images, self.fn, self.key = images, fn, key
        self.train_views, self.dtype = train_views, dtype
        self.batch_size = batch_size or images.hparams.batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "features"
        self.progress, self.device = progress, device
        self.data: dict[str, TensorDataset] = {}

    def cache_path(self) -> Path:
        """The file this module reads, or writes on first use."""
        self.images.setup()
        digest = hashlib.sha256(
            f"{self.key}|{self.images.split.digest()}|{self.images.mean}|{self.images.std}|"
            f"{self.train_views}|{self.dtype}".encode()
        ).hexdigest()[:16]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.key)[:60]
        return self.cache_dir / f"{safe}-{digest}.pt"

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        path = self.cache_path()
        if path.exists():
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if set(stored) != set(SPLITS):
                raise ValueError(f"feature cache {str(path)!r} lacks splits; delete it to rebuild")
        else:
            stored = {name: self._encode(name) for name in SPLITS}
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_save(stored, path)  # never leave a half-written cache behind
        self.data = {name: TensorDataset(*stored[name]) for name in SPLITS}

    def _encode(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        views = range(self.train_views if name == "train" else 1)
        parts = [extract_features(self.fn, self.images, name, v, dtype=self.dtype,
                                  progress=self.progress, device=self.device) for v in views]
        return torch.cat([f for f, _ in parts]), torch.cat([y for _, y in parts])

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(self.data[name], batch_size=self.batch_size, shuffle=shuffle,
                          drop_last=shuffle and len(self.data[name]) > self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def state_dict(self) -> dict:
        """The image module's normalisation and split digest, so checkpoints can classify images."""
        self.images.setup()
        return self.images.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.images.load_state_dict(state_dict)

    def on_after_batch_transfer(self, batch: list[torch.Tensor], dataloader_idx: int) -> list[torch.Tensor]:
        features, labels = batch
        return [features.float(), labels]
