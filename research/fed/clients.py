"""Satellite clients: local shards, the trained head, local updates and evaluation.

The exchanged state is the task head only (``fc_norm`` + ``head`` of the ViT); the encoder is
frozen, so each image's features are computed once in-process and cached. That caching is
numerically identical to recomputing; the simulated time and energy of the recomputation are
charged by the round scheduler according to ``comm.reuse_features``.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.base import IdentityLink
from research.atomic import atomic_save
from research.data.embedded import load_embedded
from research.data.partition import partition
from research.data.transforms import channel_stats, normalize
from research.fed.aggregate import State
from research.fed.config import DataConfig, ModelConfig, TrainConfig
from research.fed.privacy import Privacy
from research.models import SplitViT, build_backbone, configure_finetuning, load_backbone_weights


class HeadNet(nn.Module):
    """The trained part: the ViT's ``fc_norm`` and classifier, as a standalone module."""

    def __init__(self, model: SplitViT) -> None:
        super().__init__()
        self.fc_norm = copy.deepcopy(model.vit.fc_norm)
        self.head = copy.deepcopy(model.vit.head)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc_norm(features))


def exchanged_state(head: nn.Module) -> State:
    """The state that crosses links in a round: every parameter of the head, detached."""
    return {k: v.detach().clone() for k, v in head.state_dict().items()}


@dataclass
class SatelliteClient:
    """A satellite with its local shard (indices into the training features)."""

    sat: str
    plane: int
    indices: np.ndarray

    @property
    def n(self) -> int:
        return int(len(self.indices))


def client_seed(seed: int, round_idx: int, client_idx: int) -> int:
    """Seed of one local update: fixed by (run seed, round, client), so resumes replay it."""
    return (seed * 1_000_003 + round_idx * 10_007 + client_idx) % (2**31)


def local_update(template: nn.Module, state: State, features: torch.Tensor,
                 labels: torch.Tensor, cfg: TrainConfig, seed: int,
                 privacy: Privacy | None = None) -> State:
    """``local_epochs`` of SGD on one shard from the global ``state``; returns the new state.

    Under image-level privacy the SGD is DP-SGD (:meth:`Privacy.dp_sgd`). Runs on one thread: a
    head this small is 50x slower when torch spreads it over threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        head = copy.deepcopy(template)
        head.load_state_dict(state)
        head.train()
        if privacy is not None and privacy.level == "image":
            privacy.dp_sgd(head, features, labels, seed)
        else:
            _sgd(head, features, labels, cfg, seed)
        return exchanged_state(head)
    finally:
        torch.set_num_threads(threads)


def _sgd(head: nn.Module, features: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
         seed: int) -> None:
    opt = torch.optim.SGD(head.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    gen = torch.Generator().manual_seed(seed)
    n = len(labels)
    for _ in range(cfg.local_epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = nn.functional.cross_entropy(head(features[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def client_update(template: nn.Module, data: Dataset, client: SatelliteClient, index: int,
                  head: State, cfg: TrainConfig, round_idx: int, privacy: Privacy | None = None,
                  cohort: int | None = None) -> State:
    """One satellite's local update in round ``round_idx`` (same in every engine), as it leaves
    the satellite: under satellite-level privacy clipped and noised for a ``cohort`` of
    satellites training this round."""
    idx = torch.from_numpy(client.indices)
    seed = client_seed(cfg.seed, round_idx, index)
    new = local_update(template, head, data.train_x[idx], data.train_y[idx], cfg, seed, privacy)
    if privacy is not None and privacy.level == "satellite":
        new = privacy.noised_update(new, head, cohort, seed)
    return new


@torch.no_grad()
def accuracy(template: nn.Module, state: State, features: torch.Tensor,
             labels: torch.Tensor) -> float:
    """Top-1 accuracy of the head ``state`` on held-out features."""
    head = copy.deepcopy(template)
    head.load_state_dict(state)
    head.eval()
    return float((head(features).argmax(1) == labels).float().mean())


# ---------------------------------------------------------------------- model and data
def build_model(cfg: ModelConfig) -> SplitViT:
    """Split ViT at ``split_index`` 0 (embedding on board), foundation weights, head trainable."""
    from encoders.base import build_link

    torch.manual_seed(0)  # without weights (tests), the same random backbone in every process
    vit = build_backbone(cfg.backbone, cfg.num_classes)
    if cfg.weights:
        load_backbone_weights(vit, cfg.weights)
    torch.manual_seed(0)  # the fresh head starts identically in every run and engine
    nn.init.trunc_normal_(vit.head.weight, std=0.02)
    nn.init.zeros_(vit.head.bias)
    link = None if cfg.link == "identity" else build_link(cfg.link)
    model = SplitViT(vit, split_index=0, head_placement="satellite", link=link)
    configure_finetuning(model, "head")
    return model.eval()


@dataclass
class Dataset:
    """Features of every image (train + test), labels and the split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    sample_tokens: torch.Tensor


def _images(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    if cfg.root is None:
        data = load_embedded()
    else:
        from research.data.eurosat import EuroSATDataModule

        data = EuroSATDataModule(root=cfg.root).load()
    images, labels = data.images, data.labels
    if cfg.max_images is not None and cfg.max_images < len(labels):
        keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(labels))[:cfg.max_images])
        images, labels = images[keep], labels[keep]
    return images, labels


def _split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test split (every class contributes the same fraction to the test set)."""
    rng = np.random.default_rng(seed + 1)
    test = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.extend(idx[:max(1, round(test_fraction * len(idx)))].tolist())
    test_idx = np.sort(np.array(test, dtype=np.int64))
    return np.setdiff1d(np.arange(len(labels)), test_idx), test_idx


@torch.no_grad()
def _features(model: SplitViT, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    out = []
    for i in range(0, len(x), batch):
        tokens = model.satellite_part(x[i:i + batch])
        if not isinstance(model.link, IdentityLink):
            payloads = model.link.compress(tokens)
            tokens = model.link.decompress(payloads, tokens.shape)
        out.append(model.ground_part(tokens))
    return torch.cat(out)


def load_dataset(model: SplitViT, mcfg: ModelConfig, dcfg: DataConfig,
                 cache_dir: str | Path | None = None) -> Dataset:
    """Images -> normalised -> frozen-encoder features (cached on disk by the digest of what
    they depend on: the model, and the images and split, not how they are dealt)."""
    key = hashlib.sha256(repr((mcfg, dcfg.root, dcfg.max_images, dcfg.test_fraction,
                               dcfg.seed)).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"features-{key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        return Dataset(**torch.load(path, weights_only=True))
    images, labels = _images(dcfg)
    train_idx, test_idx = _split(labels.numpy(), dcfg.test_fraction, dcfg.seed)
    mean, std = channel_stats(images[torch.from_numpy(train_idx)])
    x = normalize(images, mean, std)
    feats = _features(model, x)
    ds = Dataset(feats[train_idx], labels[train_idx], feats[test_idx], labels[test_idx],
                 model.satellite_part(x[:8]).detach())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(ds.__dict__, path)
    return ds


def make_clients(satellites: list[str], planes: list[int], labels: torch.Tensor,
                 cfg: DataConfig) -> list[SatelliteClient]:
    """Deal the training set to satellites; a satellite left without data is warned about."""
    kw = {"alpha": cfg.alpha} if cfg.partition == "dirichlet" else {}
    if cfg.partition == "dirichlet":
        kw["min_size"] = 0
    n = len(satellites)
    lab = labels.numpy()
    if len(lab) < n:
        parts = [np.array([i]) for i in range(len(lab))] + [np.array([], dtype=np.int64)] * (
            n - len(lab))
    else:
        seed = cfg.seed if cfg.partition_seed is None else cfg.partition_seed
        parts = partition(lab, n, cfg.partition, seed=seed, **kw)
    clients = [SatelliteClient(s, p, idx) for s, p, idx in zip(satellites, planes, parts,
                                                              strict=True)]
    empty = [c.sat for c in clients if c.n == 0]
    if empty:
        warnings.warn(f"{len(empty)} satellite(s) hold no training data and are dropped from "
                      f"every round: {empty[:8]}", stacklevel=2)
    return clients
