"""Satellite clients: local shards, the trained part, local updates and evaluation.

With ``model.trainable: head`` the exchanged state is the task head only (``fc_norm`` + ``head``
of the ViT); the encoder is frozen, so each image's features are computed once in-process and
cached. That caching is numerically identical to recomputing; the simulated time and energy of
the recomputation are charged by the round scheduler according to ``comm.reuse_features``.

With ``model.trainable: split`` the trained module is the whole split ViT (its trainable
parameters: the patch embedding, LoRA in every block, the head) and the dataset holds images.
A split-learning update (:func:`split_sgd_step`) runs the satellite's part, sends the detached
cut activations to the ground part, and sends their gradient back; it computes the same
gradients as one backward pass through the whole model, so on-board FedAvg and split learning
(SplitFed: the ground part's copies are averaged like the satellites') differ only in where
each FLOP runs and what crosses a link, which the round scheduler charges.
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

from encoders.base import IdentityLink, LinkModule
from research.atomic import atomic_save
from research.data.embedded import load_embedded
from research.data.partition import partition, weighted_partition
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


def trained_module(model: SplitViT, trainable: str) -> nn.Module:
    """What local updates train: the head on features, or the whole split model on images."""
    return HeadNet(model) if trainable == "head" else model


def exchanged_state(module: nn.Module) -> State:
    """The state that crosses links in a round: every trainable parameter, detached (all of
    the head's; the embedding, LoRA and head of a split model)."""
    return {k: v.detach().clone() for k, v in module.named_parameters() if v.requires_grad}


def load_exchanged(module: nn.Module, state: State) -> None:
    """Load an exchanged ``state`` into ``module``: exactly its trainable parameters."""
    trainable = {k for k, v in module.named_parameters() if v.requires_grad}
    if set(state) != trainable:
        raise ValueError(f"exchanged state has keys {sorted(set(state) - trainable)[:4]} the "
                         f"module does not train and lacks {sorted(trainable - set(state))[:4]}")
    module.load_state_dict(state, strict=False)


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
                 privacy: Privacy | None = None, split: bool = False) -> State:
    """``local_epochs`` of SGD on one shard from the global ``state``; returns the new state.

    ``features`` are what the module takes (head: features; split model: images). ``split``:
    every step by split learning (:func:`split_sgd_step`). Under image-level privacy the SGD is
    DP-SGD (:meth:`Privacy.dp_sgd`). A head runs on one thread: a module this small is 50x
    slower when torch spreads it over threads.
    """
    threads = torch.get_num_threads()
    if isinstance(template, HeadNet):
        torch.set_num_threads(1)
    try:
        module = copy.deepcopy(template)
        load_exchanged(module, state)
        module.train()
        if privacy is not None and privacy.level == "image":
            privacy.dp_sgd(module, features, labels, seed)
        else:
            _sgd(module, features, labels, cfg, seed, split)
        return exchanged_state(module)
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def crossed(link: LinkModule, x: torch.Tensor) -> torch.Tensor:
    """What arrives when ``x`` crosses the cut through ``link``: its real bitstream decoded
    (``x`` itself through the identity, which needs no bytes built)."""
    if isinstance(link, IdentityLink):
        return x
    return link.decompress(link.compress(x), x.shape)


def split_sgd_step(model: SplitViT, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Gradients of one split-learning step: the satellite embeds, the activations cross the cut
    through ``model.link`` (its real bitstream: encoded on board, decoded on the ground), the
    ground runs the encoder and head and sends the decoded activations' gradient back through
    ``model.gradient_link`` (its real bitstream too), and the satellite backpropagates what it
    decodes through its part: straight through the codec, as the link's own forward does
    (:func:`encoders.baselines.straight_through`). With identity links, the same gradients as
    ``loss.backward()`` through the whole model; the caller zeroes and steps."""
    tokens = model.satellite_part(images)  # on board
    received = crossed(model.link, tokens.detach()).requires_grad_()  # what the ground decodes
    loss = nn.functional.cross_entropy(model.head(model.ground_part(received)), labels)
    loss.backward()  # on the ground: its parameters' gradients and the cut's
    tokens.backward(crossed(model.gradient_link, received.grad))  # the cut's gradient: on board


def param_groups(module: nn.Module, cfg: TrainConfig) -> list[dict]:
    """The trainable parameters by learning rate: the patch embedding at ``embed_lr``, LoRA
    adapters at ``encoder_lr``, the rest (the head) at ``lr`` (None: ``lr`` for all)."""
    rates = {"embed": cfg.embed_lr or cfg.lr, "encoder": cfg.encoder_lr or cfg.lr,
             "head": cfg.lr}
    groups: dict[str, list[nn.Parameter]] = {k: [] for k in rates}
    for name, p in module.named_parameters():
        if p.requires_grad:
            kind = ("embed" if "patch_embed." in name else "encoder" if "lora_" in name
                    else "head")
            groups[kind].append(p)
    return [{"params": ps, "lr": rates[k]} for k, ps in groups.items() if ps]


def _sgd(module: nn.Module, features: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
         seed: int, split: bool = False) -> None:
    opt = torch.optim.SGD(param_groups(module, cfg), lr=cfg.lr, momentum=cfg.momentum)
    gen = torch.Generator().manual_seed(seed)
    n = len(labels)
    for _ in range(cfg.local_epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            opt.zero_grad()
            if split:
                split_sgd_step(module, features[idx], labels[idx])
            else:
                nn.functional.cross_entropy(module(features[idx]), labels[idx]).backward()
            opt.step()


def client_update(template: nn.Module, data: Dataset, client: SatelliteClient, index: int,
                  head: State, cfg: TrainConfig, round_idx: int, privacy: Privacy | None = None,
                  cohort: int | None = None, split: bool = False) -> State:
    """One satellite's local update in round ``round_idx`` (same in every engine), as it leaves
    the satellite: under satellite-level privacy clipped and noised for a ``cohort`` of
    satellites training this round; by split learning when ``split``."""
    idx = torch.from_numpy(client.indices)
    seed = client_seed(cfg.seed, round_idx, index)
    new = local_update(template, head, data.train_x[idx], data.train_y[idx], cfg, seed, privacy,
                       split)
    if privacy is not None and privacy.level == "satellite":
        new = privacy.noised_update(new, head, cohort, seed)
    return new


@torch.no_grad()
def accuracy(template: nn.Module, state: State, features: torch.Tensor,
             labels: torch.Tensor, batch: int = 512) -> float:
    """Top-1 accuracy of the trained ``state`` on held-out features (or images)."""
    module = copy.deepcopy(template)
    load_exchanged(module, state)
    module.eval()
    hits = sum(int((module(features[i:i + batch]).argmax(1) == labels[i:i + batch]).sum())
               for i in range(0, len(labels), batch))
    return float(torch.tensor(hits, dtype=torch.float32) / len(labels))  # as ledgers have it


def held_out_accuracies(template: nn.Module, state: State, data: Dataset) -> dict[str, float]:
    """A round's accuracies: ``accuracy`` on the test images, and ``val_accuracy`` on the
    validation images when the data holds some (``data.val_fraction``), to choose settings by."""
    out = {"accuracy": accuracy(template, state, data.test_x, data.test_y)}
    if data.val_x is not None:
        out["val_accuracy"] = accuracy(template, state, data.val_x, data.val_y)
    return out


# ---------------------------------------------------------------------- model and data
def build_model(cfg: ModelConfig) -> SplitViT:
    """Split ViT at ``split_index`` 0 (embedding on board), foundation weights; the head
    trainable, or (``trainable: split``) the patch embedding, LoRA adapters and head."""
    from encoders.base import build_link

    torch.manual_seed(0)  # without weights (tests), the same random backbone in every process
    vit = build_backbone(cfg.backbone, cfg.num_classes)
    if cfg.weights:
        load_backbone_weights(vit, cfg.weights)
    torch.manual_seed(0)  # the fresh head starts identically in every run and engine
    nn.init.trunc_normal_(vit.head.weight, std=0.02)
    nn.init.zeros_(vit.head.bias)
    link = None if cfg.link == "identity" else build_link(cfg.link)
    grad_link = None if cfg.gradient_link == "identity" else build_link(cfg.gradient_link)
    model = SplitViT(vit, split_index=0, head_placement="satellite", link=link,
                     gradient_link=grad_link)
    if cfg.trainable == "split":
        torch.manual_seed(0)  # LoRA's A matrices start identically everywhere (B starts at 0)
        configure_finetuning(model, "lora", lora_rank=cfg.lora_rank)
        model.vit.patch_embed.requires_grad_(True)
    else:
        configure_finetuning(model, "head")
    return model.eval()


@dataclass
class Dataset:
    """Features of every image (train + test; normalised images when the encoder trains),
    labels and the split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    sample_tokens: torch.Tensor
    val_x: torch.Tensor | None = None  # held out of the training images (``data.val_fraction``)
    val_y: torch.Tensor | None = None


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
        out.append(model.ground_part(crossed(model.link, model.satellite_part(x[i:i + batch]))))
    return torch.cat(out)


def load_dataset(model: SplitViT, mcfg: ModelConfig, dcfg: DataConfig,
                 cache_dir: str | Path | None = None) -> Dataset:
    """Images -> normalised -> frozen-encoder features (cached on disk by the digest of what
    they depend on: the model, and the images and split, not how they are dealt). With a
    trained encoder (``trainable: split``) the normalised images themselves."""
    described = repr(mcfg)
    # what only training uses keeps the keys of caches written before it existed
    described = described.replace(f", gradient_link={mcfg.gradient_link!r}", "")
    if mcfg.trainable == "head":  # frozen features do not depend on a LoRA rank: older keys
        described = described.replace(f", lora_rank={mcfg.lora_rank})", ")")
    validation = f", {dcfg.val_fraction!r}" if dcfg.val_fraction else ""  # earlier keys stay
    key = hashlib.sha256(f"({described}, {dcfg.root!r}, {dcfg.max_images!r}, "
                         f"{dcfg.test_fraction!r}{validation}, {dcfg.seed!r})".encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"features-{key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        return Dataset(**torch.load(path, weights_only=True))
    images, labels = _images(dcfg)
    train_idx, test_idx = _split(labels.numpy(), dcfg.test_fraction, dcfg.seed)
    val_idx = None
    if dcfg.val_fraction:  # out of the training images; the test images stay the same
        keep, held = _split(labels.numpy()[train_idx], dcfg.val_fraction, dcfg.seed + 1)
        train_idx, val_idx = train_idx[keep], train_idx[held]
    # normalised by what the satellites train on: with a validation split the statistics (and
    # so every feature) move slightly against a run without one
    mean, std = channel_stats(images[torch.from_numpy(train_idx)])
    x = normalize(images, mean, std)
    val_y = None if val_idx is None else labels[val_idx]
    if mcfg.trainable != "head":
        with torch.no_grad():
            tokens = model.satellite_part(x[:8])
        return Dataset(x[train_idx], labels[train_idx], x[test_idx], labels[test_idx], tokens,
                       val_x=None if val_idx is None else x[val_idx], val_y=val_y)
    feats = _features(model, x)
    ds = Dataset(feats[train_idx], labels[train_idx], feats[test_idx], labels[test_idx],
                 model.satellite_part(x[:8]).detach(),
                 val_x=None if val_idx is None else feats[val_idx], val_y=val_y)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # no None fields: caches shared with older checkouts keep the fields those know
        atomic_save({k: v for k, v in ds.__dict__.items() if v is not None}, path)
    return ds


def make_clients(satellites: list[str], planes: list[int], labels: torch.Tensor,
                 cfg: DataConfig, class_weights: np.ndarray | None = None
                 ) -> list[SatelliteClient]:
    """Deal the training set to satellites; a satellite left without data is warned about.

    ``class_weights`` (satellites, classes): what each satellite imaged, for the ground-track
    partition (:func:`research.fed.ground_track.captured_class_weights`)."""
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
        if cfg.partition == "ground_track":
            if class_weights is None or len(class_weights) != n:
                raise ValueError(f"data.partition ground_track needs one row of class weights "
                                 f"per satellite ({n}), got "
                                 f"{None if class_weights is None else len(class_weights)}")
            parts = weighted_partition(lab, class_weights, seed=seed)
        else:
            parts = partition(lab, n, cfg.partition, seed=seed, **kw)
    clients = [SatelliteClient(s, p, idx) for s, p, idx in zip(satellites, planes, parts,
                                                              strict=True)]
    empty = [c.sat for c in clients if c.n == 0]
    if empty:
        warnings.warn(f"{len(empty)} satellite(s) hold no training data and are dropped from "
                      f"every round: {empty[:8]}", stacklevel=2)
    return clients
