"""EuroSATDataModule: the 10-class EuroSAT RGB data set, split, augmented and normalised.

Three sources, in order: an ImageFolder tree at ``root``; torchvision's downloader when ``root``
is absent and ``download=True``; the embedded 1,000-image subset when ``root`` is ``None``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, TensorDataset

from research.data.embedded import load_embedded
from research.data.imagefolder import ImageSet, load_image_folder
from research.data.splits import Split, load_split, save_split, stratified_split
from research.data.transforms import channel_stats, normalize, random_dihedral


def resolve_root(root: str | Path, download: bool) -> Path:
    """Find the ImageFolder tree under ``root``, downloading it with torchvision when asked."""
    root = Path(root)
    # torchvision's EuroSAT downloader unpacks to <root>/eurosat/2750/<Class>/.
    for candidate in (root, root / "eurosat" / "2750", root / "2750"):
        if (candidate / "Forest").is_dir():
            return candidate
    if download:
        from torchvision.datasets import EuroSAT

        EuroSAT(root=str(root), download=True)
        return root / "eurosat" / "2750"
    return root  # load_image_folder raises a clear error naming it


class EuroSATDataModule(L.LightningDataModule):
    """EuroSAT RGB with a seeded, stratified split and train-split normalisation.

    Args:
        root: ImageFolder root (``<root>/<Class>/*.jpg``); ``None`` uses the embedded subset.
        download: fetch EuroSAT with torchvision when ``root`` holds no data (needs internet).
        batch_size: images per batch.
        num_workers: DataLoader workers (0 is fastest here: batches are tensor slices).
        split_fractions: train/val/test fractions of each class.
        split_seed: seed of the stratified split.
        split_file: JSON that records the split; read if it exists, written otherwise.
        augment: random flips and 90-degree rotations on training batches.
        cache_dir: where decoded images are cached (default ``~/.cache/satedge``).
    """

    def __init__(
        self,
        root: str | None = None,
        download: bool = False,
        batch_size: int = 128,
        num_workers: int = 0,
        split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
        split_seed: int = 0,
        split_file: str | None = None,
        augment: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data: ImageSet | None = None
        self.split: Split | None = None
        self.mean: list[float] = [0.5, 0.5, 0.5]
        self.std: list[float] = [0.25, 0.25, 0.25]

    @property
    def classes(self) -> tuple[str, ...]:
        return self.data.classes if self.data is not None else ()

    def load(self) -> ImageSet:
        """Decode the images once (cached on disk) and return them."""
        if self.data is None:
            hp = self.hparams
            if hp.root is None:
                self.data = load_embedded()
            else:
                root = resolve_root(hp.root, hp.download)
                self.data = load_image_folder(root, cache_dir=hp.cache_dir)
        return self.data

    def setup(self, stage: str | None = None) -> None:
        if self.split is not None:
            return
        data = self.load()
        hp = self.hparams
        if hp.split_file and Path(hp.split_file).exists():
            self.split = load_split(hp.split_file, data.names)
        else:
            self.split = stratified_split(data.labels.numpy(), tuple(hp.split_fractions), hp.split_seed)
            if hp.split_file:
                save_split(self.split, data.names, hp.split_file, source=str(hp.root))
        self.mean, self.std = channel_stats(data.images[torch.from_numpy(self.split.train)])

    def subset(self, name: str) -> TensorDataset:
        """The ``train``/``val``/``test`` split as a dataset of (uint8 image, label)."""
        self.setup()
        idx = torch.from_numpy(getattr(self.split, name))
        return TensorDataset(self.data.images[idx], self.data.labels[idx])

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.subset(name),
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            drop_last=shuffle and len(self.subset(name)) > self.hparams.batch_size,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def prepare_batch(self, batch: list[torch.Tensor], train: bool) -> list[torch.Tensor]:
        """Augment (training only) and normalise a batch of uint8 images."""
        images, labels = batch
        if train and self.hparams.augment:
            images = random_dihedral(images)
        return [normalize(images, self.mean, self.std), labels]

    def on_after_batch_transfer(self, batch: list[torch.Tensor], dataloader_idx: int) -> list[torch.Tensor]:
        training = self.trainer is not None and self.trainer.training
        return self.prepare_batch(batch, train=training)

    def state_dict(self) -> dict:
        """Normalisation and split digest travel in checkpoints so inference uses the same ones."""
        return {"mean": self.mean, "std": self.std, "split_digest": self.split.digest() if self.split else None}

    def load_state_dict(self, state_dict: dict) -> None:
        """Adopt the checkpoint's normalisation: a model must see inputs scaled as in training."""
        self.setup()
        self.mean, self.std = list(state_dict["mean"]), list(state_dict["std"])
        if state_dict.get("split_digest") not in (None, self.split.digest()):
            rank_zero_warn(
                f"checkpoint was trained on split {state_dict['split_digest'][:12]}, this run uses "
                f"{self.split.digest()[:12]}: its test images may overlap the checkpoint's training set"
            )
