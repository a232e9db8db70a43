"""Schemes: the ways a satellite can answer a capture, each run on real images with real bytes.

A scheme turns a batch of uint8 images into predictions plus, per image, the payload bytes that
leave the satellite, the FLOPs executed on board and on the ground, and what must come back up
(features for a head placed on the satellite). FLOPs are counted by
:func:`research.models.profile.count_flops` on the same parts, bytes are ``len()`` of the real
payloads. Latency, energy and the contact plan are applied afterwards by
:mod:`research.eval.evaluate`, identically for every scheme.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

import snn.link  # noqa: F401  (registers the "spike" link, so every link name resolves here)
from encoders.base import LinkModule
from encoders.registry import build_for_cut
from research.models.presets import get_preset
from research.models.profile import count_flops
from research.models.split_vit import SplitViT
from research.tasks.loading import Classifier, load_classifier

__all__ = ["ANSWER_BYTES", "SchemeOutput", "build_scheme", "encode_answer", "model_bytes"]

ANSWER_BYTES = 2
"""The answer sent to the ground: a class index as a little-endian uint16."""


def encode_answer(label: int) -> bytes:
    """The bytes of one answer (what an on-board head sends down)."""
    return struct.pack("<H", int(label))


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (what a node must hold to run it)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class SchemeOutput:
    """Per-image results of one scheme (arrays of length N, FLOPs per image)."""

    predictions: np.ndarray
    payload_bytes: np.ndarray
    flops_onboard: float
    flops_ground: float
    return_bytes: int
    flops_return_onboard: float
    onboard_model_bytes: int


class _Scheme:
    """Common batching; subclasses implement ``_batch`` and the per-image FLOPs."""

    def __init__(self, name: str, classifier: Classifier, batch_size: int = 100) -> None:
        self.name = name
        self.clf = classifier
        self.batch_size = batch_size

    @torch.no_grad()
    def run(self, images: torch.Tensor) -> SchemeOutput:
        preds, sizes = [], []
        for i in range(0, len(images), self.batch_size):
            p, s = self._batch(images[i : i + self.batch_size])
            preds.append(p)
            sizes.extend(s)
        return SchemeOutput(np.concatenate(preds), np.asarray(sizes, dtype=np.int64),
                            *self._costs(images[:1]))

    def _batch(self, images: torch.Tensor) -> tuple[np.ndarray, list[int]]:
        raise NotImplementedError

    def _costs(self, one: torch.Tensor) -> tuple[float, float, int, float, int]:
        raise NotImplementedError


class SplitScheme(_Scheme):
    """Satellite part (+ link encoder) on board; link decoder, encoder rest (+ head) on the ground.

    With the head on the satellite the ground returns the pooled features, the satellite runs
    the head and sends the answer down (the paper's training split, used here for inference).
    """

    def __init__(self, name: str, classifier: Classifier, link: LinkModule) -> None:
        super().__init__(name, classifier)
        self.model: SplitViT = classifier.model
        self.link = link.eval()

    def _batch(self, images: torch.Tensor) -> tuple[np.ndarray, list[int]]:
        tokens = self.model.satellite_part(self.clf.normalize(images))
        payloads = self.link.compress(tokens)
        decoded = self.link.decompress(payloads, tokens.shape[1:])
        logits = self.model.head(self.model.ground_part(decoded))
        return logits.argmax(1).numpy(), [len(p) for p in payloads]

    def _costs(self, one: torch.Tensor) -> tuple[float, float, int, float, int]:
        m = self.model
        x = self.clf.normalize(one)
        tokens = m.satellite_part(x)
        payload = self.link.compress(tokens)
        decoded = self.link.decompress(payload, tokens.shape[1:])
        feats = m.ground_part(decoded)
        on_board = count_flops(m.satellite_part, x) + count_flops(self.link.compress, tokens)
        ground = (count_flops(self.link.decompress, payload, tokens.shape[1:])
                  + count_flops(m.ground_part, decoded))
        head = count_flops(m.head, feats)
        k = m.split_index
        board_modules = [m.vit.patch_embed, *m.vit.blocks[:k], self.link]
        board = sum(model_bytes(mod) for mod in board_modules)
        if m.vit.pos_embed is not None:
            board += m.vit.pos_embed.numel() * m.vit.pos_embed.element_size()
        if m.head_placement == "satellite":
            board += sum(model_bytes(mod) for mod in m.head_modules())
            return on_board, ground, 4 * feats[0].numel(), head, board
        return on_board, ground + head, 0, 0.0, board


class ImageScheme(_Scheme):
    """Send the image (raw, PNG, JPEG or WebP at ``quality``) down; the whole model on the ground.

    Image encoding on board is not priced in FLOPs (it runs on dedicated codec hardware or a few
    ms of CPU for a 64x64 tile); the decoded image, not the original, is what the ground sees.
    """

    def __init__(self, name: str, classifier: Classifier, fmt: str, quality: int) -> None:
        super().__init__(name, classifier)
        self.format, self.quality = fmt, quality

    def _codec(self, image: torch.Tensor) -> tuple[torch.Tensor, int]:
        if self.format == "raw":
            return image, image.numel()
        pil = Image.fromarray(image.permute(1, 2, 0).numpy())
        buf = io.BytesIO()
        kwargs = {} if self.format == "png" else {"quality": self.quality}
        pil.save(buf, format=self.format.upper(), **kwargs)
        data = buf.getvalue()
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        return torch.from_numpy(decoded.copy()).permute(2, 0, 1), len(data)

    def _batch(self, images: torch.Tensor) -> tuple[np.ndarray, list[int]]:
        coded = [self._codec(img) for img in images]
        decoded = torch.stack([c[0] for c in coded])
        logits = self.clf.model(self.clf.normalize(decoded))
        return logits.argmax(1).numpy(), [c[1] for c in coded]

    def _costs(self, one: torch.Tensor) -> tuple[float, float, int, float, int]:
        return 0.0, count_flops(self.clf.model, self.clf.normalize(one)), 0, 0.0, 0


class OnboardScheme(_Scheme):
    """The whole model on board; only the answer goes down."""

    def _batch(self, images: torch.Tensor) -> tuple[np.ndarray, list[int]]:
        logits = self.clf.model(self.clf.normalize(images))
        return logits.argmax(1).numpy(), [ANSWER_BYTES] * len(images)

    def _costs(self, one: torch.Tensor) -> tuple[float, float, int, float, int]:
        flops = count_flops(self.clf.model, self.clf.normalize(one))
        return flops, 0.0, 0, 0.0, model_bytes(self.clf.model)


def token_link(name: str, model: SplitViT, backbone: str) -> LinkModule:
    """A training-free registered link (identity, float16, int8, int4, ...) sized for this cut."""
    preset = get_preset(backbone)
    num_tokens = (preset.img_size // preset.patch_size) ** 2
    return build_for_cut(name, model.embed_dim, num_tokens)


def build_scheme(spec, classifier: Classifier) -> _Scheme:
    """The scheme a :class:`research.eval.scenario.SchemeSpec` describes."""
    if spec.kind == "image":
        return ImageScheme(spec.name, classifier, spec.format, spec.quality)
    if spec.kind == "onboard":
        return OnboardScheme(spec.name, classifier)
    if spec.checkpoint:
        coded = load_classifier(spec.checkpoint,
                                head_placement=classifier.model.head_placement)
        return SplitScheme(spec.name, coded, coded.model.link)
    link = token_link(spec.link, classifier.model, classifier.hparams["backbone"])
    return SplitScheme(spec.name, classifier, link)
