"""Tasks as chains of shared services, built from one encoder, and their EuroSAT evaluations.

Three tasks share one encoder (and one embedder per modality):

* ``landcover``: the committed checkpoint's 10-class head;
* ``coarse``: 4 classes derived from the labels by :data:`COARSE_OF` (cultivated land, natural
  vegetation, water, urban), with its own head trained on the frozen encoder's features;
* ``retrieval``: unit-length embeddings, evaluated by class-level recall@k against a gallery.

A chain is ``[embedder(modality), codec?, encoder segments..., head(task)]``; composing it gives
the unsplit model's logits exactly when the codec is lossless (tested). With a codec trained at
block ``k > 0`` (``codec_cut``), the "embedder" is the on-board front (embedder + the first
``k`` blocks, :class:`~research.serving.services.OnBoardFront`) and the segments start at ``k``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from encoders.base import LinkModule, build_link
from research.data.imagefolder import EUROSAT_CLASSES
from research.data.transforms import normalize
from research.serving.modalities import MS13_RGB_BANDS
from research.serving.services import (
    ClassifierHead,
    EmbeddingHead,
    EncoderSegment,
    LinkCodec,
    LinkDecoder,
    OnBoardFront,
    Service,
    SpikingTaskHead,
    modality_embedder,
    multispectral_embedder,
    rgb_embedder,
)

__all__ = [
    "COARSE_CLASSES",
    "COARSE_OF",
    "TASKS",
    "Catalog",
    "build_catalog",
    "coarse_labels",
    "recall_at_k",
    "train_coarse_head",
]

TASKS = ("landcover", "coarse", "retrieval")
COARSE_CLASSES = ("land", "vegetation", "water", "urban")
COARSE_OF = {
    "AnnualCrop": "land", "PermanentCrop": "land", "Pasture": "land",
    "Forest": "vegetation", "HerbaceousVegetation": "vegetation",
    "River": "water", "SeaLake": "water",
    "Highway": "urban", "Industrial": "urban", "Residential": "urban",
}
"""EuroSAT class -> coarse class: cultivated land, natural vegetation, water, built-up."""


def coarse_labels(labels: torch.Tensor, classes: Sequence[str] = EUROSAT_CLASSES) -> torch.Tensor:
    """Map 10-class EuroSAT labels to the 4 coarse classes."""
    table = torch.tensor([COARSE_CLASSES.index(COARSE_OF[c]) for c in classes])
    return table[labels.long()]


@dataclass
class Catalog:
    """Every service of a deployment and how tasks chain them.

    Attributes:
        services: name -> service.
        embedders: modality -> embedder name.
        segments: encoder segment names in order (shared by every task).
        heads: task -> head name.
        codec: link codec name at the cut, or ``None`` (tokens stay float32).
        codec_cut: the block the codec encodes (0: the embedder's output).
        mean / std: per-modality input normalisation (uint8 images -> model inputs).
    """

    services: dict[str, Service]
    embedders: dict[str, str]
    segments: list[str]
    heads: dict[str, str]
    codec: str | None = None
    codec_cut: int = 0
    mean: dict[str, list[float]] = field(default_factory=dict)
    std: dict[str, list[float]] = field(default_factory=dict)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.heads)

    def chain(self, task: str, modality: str = "rgb") -> list[str]:
        """Service names a request for ``task`` passes through, in order."""
        codec = [self.codec] if self.codec else []
        return [self.embedders[modality], *codec, *self.segments, self.heads[task]]

    def shared(self, modality: str = "rgb") -> list[str]:
        """The part of every chain that a multi-task request runs once."""
        return self.chain(self.tasks[0], modality)[:-1]

    def normalize(self, images: torch.Tensor, modality: str = "rgb") -> torch.Tensor:
        return normalize(images, self.mean[modality], self.std[modality])

    def token_shape(self) -> tuple[int, int]:
        seg = self.services[self.segments[0]]
        assert isinstance(seg, EncoderSegment)
        return seg.num_tokens, seg.dim

    @torch.no_grad()
    def features(self, images: torch.Tensor, modality: str = "rgb",
                 batch_size: int = 200) -> torch.Tensor:
        """Pooled encoder features of uint8 images (the input of every head)."""
        out = []
        for i in range(0, len(images), batch_size):
            x = self.services[self.embedders[modality]](self.normalize(images[i:i + batch_size],
                                                                        modality))
            for name in self.segments:
                x = self.services[name](x)
            out.append(x)
        return torch.cat(out)


def build_catalog(vit: VisionTransformer, mean: Sequence[float], std: Sequence[float], *,
                  cuts: Sequence[int] = (), codec: str | LinkModule | None = None,
                  codec_cut: int = 0, coarse_head: nn.Module | None = None,
                  spiking_head: nn.Module | None = None,
                  embedders: Mapping[str, nn.Module] | None = None,
                  embedder_stats: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
                  retrieval_answer: str = "float16") -> Catalog:
    """Services for the three tasks on one encoder.

    Args:
        vit: the encoder (eval mode); its ``fc_norm`` + ``head`` is the land-cover head.
        mean / std: RGB normalisation of the checkpoint; 13-band inputs reuse it on B04/B03/B02
            and use 0.5 / 0.25 on the other bands.
        cuts: block indices where the encoder is cut into segments (``()``: one segment); with
            ``codec_cut > 0`` they must lie after it.
        codec: link module name (``encoders.build_link``) or a trained link module.
        codec_cut: the block whose input the codec encodes: 0 at the embedder's output; ``k > 0``
            pins the first ``k`` blocks to the source in each modality's :class:`OnBoardFront`.
        coarse_head: the coarse head (``LayerNorm`` + ``Linear``); a fresh one if ``None``.
        spiking_head: optional spiking land-cover head, served as task ``landcover_snn``.
        embedders / embedder_stats: trained patch embeddings of other modalities (``pan``,
            ``rgb20m``: :func:`research.serving.modalities.load_embedder_weights`) and the
            mean / std of their inputs. ``rgb`` and the synthetic ``ms13`` are always served.
        retrieval_answer: how an embedding computed on board goes down (``float16``, ``int8``).
    """
    depth = len(vit.blocks)
    if not 0 <= codec_cut < depth or (codec_cut and codec is None):
        raise ValueError(f"codec_cut {codec_cut} must be a block index in 0..{depth - 1}, and "
                         "above 0 only with a codec")
    bounds = [codec_cut, *sorted(int(c) for c in cuts), depth]
    if len(set(bounds)) != len(bounds) or bounds != sorted(bounds):
        raise ValueError(f"cuts {list(cuts)} must be distinct block indices in "
                         f"{codec_cut + 1}..{depth - 1}"
                         + (f" (blocks 0..{codec_cut} run on board before the codec)"
                            if codec_cut else ""))
    dim = int(vit.embed_dim)
    services: dict[str, Service] = {}
    embedders, embedder_stats = dict(embedders or {}), dict(embedder_stats or {})
    if set(embedders) != set(embedder_stats):
        raise ValueError(f"embedders {sorted(embedders)} and embedder_stats "
                         f"{sorted(embedder_stats)} must name the same modalities")
    modal = {"rgb": rgb_embedder(vit), "ms13": multispectral_embedder(vit)}
    modal.update({name: modality_embedder(vit, name, pe) for name, pe in embedders.items()})
    segments = [EncoderSegment(vit, a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    link = None
    if codec is not None:
        module = build_link(codec) if isinstance(codec, str) else codec
        link = LinkCodec(module.eval(), (segments[0].num_tokens, dim))
    if codec_cut:
        before = EncoderSegment(vit, 0, codec_cut)
        modal = {k: OnBoardFront(e, before) for k, e in modal.items()}
    for emb in modal.values():
        services[emb.name] = emb
    services.update({s.name: s for s in segments})
    if coarse_head is None:
        coarse_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, len(COARSE_CLASSES)))
    heads: list[Service] = [
        ClassifierHead("head_landcover", vit.fc_norm, vit.head),
        ClassifierHead("head_coarse", coarse_head[0], coarse_head[1]),
        EmbeddingHead("head_retrieval", vit.fc_norm, dim, answer=retrieval_answer),
    ]
    if spiking_head is not None:
        heads.append(SpikingTaskHead("head_landcover_snn", spiking_head, dim))
    services.update({h.name: h for h in heads})
    if link is not None:
        decoder = LinkDecoder(link)
        services[link.name], services[decoder.name] = link, decoder
    head_of = {h.name.removeprefix("head_"): h.name for h in heads}
    ms_mean, ms_std = [0.5] * 13, [0.25] * 13
    for rgb_band, ms_band in enumerate(MS13_RGB_BANDS):
        ms_mean[ms_band], ms_std[ms_band] = float(mean[rgb_band]), float(std[rgb_band])
    means = {"rgb": list(mean), "ms13": ms_mean,
             **{k: [float(v) for v in m] for k, (m, _) in embedder_stats.items()}}
    stds = {"rgb": list(std), "ms13": ms_std,
            **{k: [float(v) for v in sd] for k, (_, sd) in embedder_stats.items()}}
    for s in services.values():
        s.eval()
    return Catalog(services, {k: e.name for k, e in modal.items()},
                   [s.name for s in segments], head_of, link.name if link else None, codec_cut,
                   means, stds)


def train_coarse_head(features: torch.Tensor, labels: torch.Tensor, *, steps: int = 300,
                      lr: float = 0.02, seed: int = 0) -> nn.Sequential:
    """Train the coarse head (``LayerNorm`` + ``Linear``) on frozen features, full batch.

    The encoder stays frozen, so the head is the only new weight a new task adds on board.
    """
    torch.manual_seed(seed)
    dim = features.shape[1]
    head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, len(COARSE_CLASSES)))
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    y = coarse_labels(labels)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(features), y)
        loss.backward()
        opt.step()
    return head.eval()


def recall_at_k(queries: torch.Tensor, query_labels: torch.Tensor, gallery: torch.Tensor,
                gallery_labels: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Class-level recall@k: share of queries with a same-class item among their k nearest.

    Embeddings are unit length, so nearest means the largest cosine similarity.
    """
    sims = queries @ gallery.T
    top = sims.topk(max(ks), dim=1).indices
    hit = gallery_labels[top] == query_labels[:, None]
    return {k: float(hit[:, :k].any(1).float().mean()) for k in ks}
