"""EuroSAT data: the DataModule, the embedded subset, splits, augmentations and partitioners."""

from research.data.eurosat import EuroSATDataModule
from research.data.features import FeatureDataModule
from research.data.imagefolder import EUROSAT_CLASSES, ImageSet, load_image_folder
from research.data.partition import dirichlet_partition, iid_partition, partition, shard_partition
from research.data.splits import Split, stratified_split

__all__ = [
    "EUROSAT_CLASSES",
    "EuroSATDataModule",
    "FeatureDataModule",
    "ImageSet",
    "Split",
    "dirichlet_partition",
    "iid_partition",
    "load_image_folder",
    "partition",
    "shard_partition",
    "stratified_split",
]
