"""Schemes: the ways a satellite can answer a capture, each run on real images with real bytes.

A scheme turns a batch of uint8 images into predictions plus, per image, the payload bytes that
leave the satellite, the FLOPs executed on board and on the ground, and what must come back up
(features for a head placed on the satellite). FLOPs are counted by
:func:`research.models.profile.count_flops` on the same parts, bytes are ``len()`` of the real
payloads. Latency, energy and the contact plan are applied afterwards by
:mod:`research.eval.evaluate`, identically for every scheme.

A scheme is one :class:`EvalScheme` subclass registered under the ``kind`` a scenario's
``schemes:`` entry names, with one decorator::

    @register_eval_scheme("onboard")
    class OnboardScheme(EvalScheme): ...

The scenario parser checks each entry with the class's :meth:`EvalScheme.check_entry` and
:func:`build_scheme` builds it with :meth:`EvalScheme.from_spec`; the evaluation then calls
:meth:`EvalScheme.run`, which batches :meth:`EvalScheme.predict_batch` and asks
:meth:`EvalScheme.costs` once. An unknown kind is an error that lists the registered ones
(:func:`list_eval_schemes`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

import snn.link  # noqa: F401  (registers the "spike" link, so every link name resolves here)
from encoders.base import LinkModule
from encoders.images import IMAGE_FORMATS, image_roundtrip
from encoders.registry import build_for_cut, link_spec, list_links
from research.models.presets import get_preset
from research.models.profile import count_flops
from research.models.split_vit import OnBoard, SplitViT
from research.paths import resolve_path
from research.registry import Registry
from research.tasks.loading import Classifier, load_classifier

__all__ = [
    "ANSWER_BYTES",
    "EvalScheme",
    "ImageScheme",
    "OnboardScheme",
    "SchemeOutput",
    "SplitScheme",
    "build_scheme",
    "encode_answer",
    "eval_scheme_class",
    "list_eval_schemes",
    "model_bytes",
    "register_eval_scheme",
]

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
    """Per-image results of one scheme (arrays of length N, FLOPs per image).

    ``calibration_accuracy`` is the scheme's accuracy on calibration images (set by
    :func:`research.eval.evaluate.run_schemes` when a policy needs it; ``nan`` otherwise).
    ``onboard_event_j`` is the on-board energy per image on an event-driven profile, from the
    operations and spikes counted on the images (set when the scenario names one; ``nan``
    otherwise).
    """

    predictions: np.ndarray
    payload_bytes: np.ndarray
    flops_onboard: float
    flops_ground: float
    return_bytes: int
    flops_return_onboard: float
    onboard_model_bytes: int
    calibration_accuracy: float = float("nan")
    onboard_event_j: float = float("nan")


Costs = tuple[float, float, int, float, int]
"""Per image: FLOPs on board, FLOPs on the ground, bytes sent back up, FLOPs on board after the
return, bytes of the model parts on board (the last five fields of :class:`SchemeOutput`)."""


class EvalScheme:
    """Base class of evaluation schemes: common batching around the hooks a scheme implements.

    Hooks (the scenario parser and :func:`research.eval.evaluate.run_schemes` call them):

    - :meth:`check_entry` (classmethod): check and complete one scenario ``schemes:`` entry.
    - :meth:`from_spec` (classmethod): build the scheme a :class:`~research.eval.scenario.SchemeSpec`
      describes.
    - :meth:`predict_batch`: predictions and payload bytes of one batch of images.
    - :meth:`costs`: FLOPs, return bytes and on-board model bytes of one image.

    Attributes:
        kind: Registry name, the scenario's ``kind:`` (set by :func:`register_eval_scheme`).
    """

    kind: ClassVar[str] = ""

    def __init__(self, name: str, classifier: Classifier, batch_size: int = 100) -> None:
        self.name = name
        self.clf = classifier
        self.batch_size = batch_size

    @classmethod
    def check_entry(cls, entry: dict[str, Any], where: str) -> None:
        """Check one scenario entry (keys of ``SchemeSpec``) in place, filling derived defaults.

        Raises:
            ValueError: Naming ``where`` and the bad key (the parser re-raises it as a
                ``ScenarioError``). The default accepts every entry.
        """

    @classmethod
    def from_spec(cls, spec: Any, classifier: Classifier) -> EvalScheme:
        """The scheme for a checked ``SchemeSpec`` and the scenario's classifier."""
        return cls(spec.name, classifier)

    @torch.no_grad()
    def run(self, images: torch.Tensor) -> SchemeOutput:
        """Every image through :meth:`predict_batch` in batches, plus :meth:`costs` of one."""
        preds, sizes = [], []
        for i in range(0, len(images), self.batch_size):
            p, s = self.predict_batch(images[i : i + self.batch_size])
            preds.append(p)
            sizes.extend(s)
        return SchemeOutput(np.concatenate(preds), np.asarray(sizes, dtype=np.int64),
                            *self.costs(images[:1]))

    @torch.no_grad()
    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Fraction of ``images`` answered right (through the same payloads as :meth:`run`)."""
        preds = [self.predict_batch(images[i : i + self.batch_size])[0]
                 for i in range(0, len(images), self.batch_size)]
        return float(np.mean(np.concatenate(preds) == labels.numpy()))

    def predict_batch(self, images: torch.Tensor) -> tuple[np.ndarray, list[int]]:
        """Predicted classes ``[B]`` and the bytes each image sends down, for uint8 ``images``."""
        raise NotImplementedError

    def onboard_module(self) -> nn.Module | None:
        """What runs on board, as a module of normalised images whose forward
        :func:`snn.count_ops` can count (None: nothing but a codec outside the ledger)."""
        raise NotImplementedError

    @torch.no_grad()
    def onboard_energy_j(self, images: torch.Tensor, profile: Any) -> float:
        """On-board joules per image under ``profile``, from the ops (and spikes) counted on
        ``images`` (uint8)."""
        from snn import OpCounts, count_ops

        module = self.onboard_module()
        if module is None:
            return 0.0
        parts = [count_ops(module, self.clf.normalize(images[i : i + self.batch_size]))
                 for i in range(0, len(images), self.batch_size)]
        return OpCounts.merge(parts).energy(profile).energy_j

    def costs(self, one: torch.Tensor) -> Costs:
        """:data:`Costs` of one image ``[1, 3, H, W]`` (the same for every image)."""
        raise NotImplementedError


_SCHEMES: Registry[type[EvalScheme]] = Registry("evaluation scheme kind", name_attr="kind")


def register_eval_scheme(kind: str) -> Callable[[type[EvalScheme]], type[EvalScheme]]:
    """Class decorator registering an :class:`EvalScheme` under ``kind`` (a scenario's ``kind:``)."""
    return _SCHEMES.register(kind)


def eval_scheme_class(kind: str) -> type[EvalScheme]:
    """The scheme class registered as ``kind`` (ValueError naming the valid kinds otherwise)."""
    return _SCHEMES.get(kind)


def list_eval_schemes() -> list[str]:
    """Every registered scheme kind, sorted."""
    return _SCHEMES.names()


def _training_free(name: Any) -> bool:
    """True if ``name`` is a registered link that needs no training (asks the link registry)."""
    try:
        return not link_spec(str(name)).learned
    except ValueError:
        return False


def _training_free_links() -> list[str]:
    return [n for n in list_links() if not link_spec(n).learned]


def token_link(name: str, model: SplitViT, backbone: str) -> LinkModule:
    """A training-free registered link (identity, float16, int8, int4, ...) sized for this cut."""
    preset = get_preset(backbone)
    num_tokens = (preset.img_size // preset.patch_size) ** 2
    return build_for_cut(name, model.embed_dim, num_tokens)


@register_eval_scheme("split")
class SplitScheme(EvalScheme):
    """Satellite part (+ link encoder) on board; link decoder, encoder rest (+ head) on the ground.

    With the head on the satellite the ground returns the pooled features, the satellite runs
    the head and sends the answer down (the paper's training split, used here for inference).
    """

    def __init__(self, name: str, classifier: Classifier, link: LinkModule) -> None:
        super().__init__(name, classifier)
        self.model: SplitViT = classifier.model
        self.link = link.eval()

    @classmethod
    def check_entry(cls, entry: dict[str, Any], where: str) -> None:
        """A trained codec checkpoint (path resolved; ``link`` defaults to ``"codec"``) or a
        training-free registered link."""
        if entry.get("checkpoint"):
            entry["checkpoint"] = resolve_path(str(entry["checkpoint"]))
            entry.setdefault("link", "codec")
        elif not _training_free(entry.get("link", "identity")):
            raise ValueError(f"{where}.link {entry.get('link')!r}: expected a training-free link, "
                             f"one of {_training_free_links()}, or a trained codec given as "
                             "'checkpoint'")

    @classmethod
    def from_spec(cls, spec: Any, classifier: Classifier) -> SplitScheme:
        """The checkpoint's trained codec (and its weights), else the named link sized for the cut."""
        if spec.checkpoint:
            coded = load_classifier(spec.checkpoint,
                                    head_placement=classifier.model.head_placement)
            return cls(spec.name, coded, coded.model.link)
        link = token_link(spec.link, classifier.model, classifier.hparams["backbone"])
        return cls(spec.name, classifier, link)

    def predict_batch(self, images: torch.Tensor) -> tuple[np.ndarray, list[int]]:
        tokens = self.model.satellite_part(self.clf.normalize(images))
        payloads = self.link.compress(tokens)
        decoded = self.link.decompress(payloads, tokens.shape[1:])
        logits = self.model.head(self.model.ground_part(decoded))
        return logits.argmax(1).numpy(), [len(p) for p in payloads]

    def onboard_module(self) -> nn.Module:
        return OnBoard(self.model, self.link)

    def costs(self, one: torch.Tensor) -> Costs:
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
        board = model_bytes(OnBoard(m, self.link))
        if m.vit.pos_embed is not None:
            board += m.vit.pos_embed.numel() * m.vit.pos_embed.element_size()
        if m.head_placement == "satellite":
            return on_board, ground, 4 * feats[0].numel(), head, board
        return on_board, ground + head, 0, 0.0, board


@register_eval_scheme("image")
class ImageScheme(EvalScheme):
    """Send the image (raw, PNG, JPEG or WebP at ``quality``) down; the whole model on the ground.

    Image encoding on board is not priced in FLOPs (it runs on dedicated codec hardware or a few
    ms of CPU for a 64x64 tile); the decoded image, not the original, is what the ground sees.
    """

    FORMATS: ClassVar[tuple[str, ...]] = IMAGE_FORMATS

    def __init__(self, name: str, classifier: Classifier, fmt: str, quality: int) -> None:
        super().__init__(name, classifier)
        self.format, self.quality = fmt, quality

    @classmethod
    def check_entry(cls, entry: dict[str, Any], where: str) -> None:
        """``format`` one of :attr:`FORMATS`, ``quality`` an integer in [1, 100]."""
        if entry.get("format", "raw") not in cls.FORMATS:
            raise ValueError(f"{where}.format {entry.get('format')!r} is not one of "
                             f"{list(cls.FORMATS)}")
        q = entry.get("quality", 75)
        if not isinstance(q, int) or not 1 <= q <= 100:
            raise ValueError(f"{where}.quality must be an integer in [1, 100], got {q!r}")

    @classmethod
    def from_spec(cls, spec: Any, classifier: Classifier) -> ImageScheme:
        return cls(spec.name, classifier, spec.format, spec.quality)

    def _codec(self, image: torch.Tensor) -> tuple[torch.Tensor, int]:
        return image_roundtrip(image, self.format, self.quality)

    def predict_batch(self, images: torch.Tensor) -> tuple[np.ndarray, list[int]]:
        coded = [self._codec(img) for img in images]
        decoded = torch.stack([c[0] for c in coded])
        logits = self.clf.model(self.clf.normalize(decoded))
        return logits.argmax(1).numpy(), [c[1] for c in coded]

    def costs(self, one: torch.Tensor) -> Costs:
        return 0.0, count_flops(self.clf.model, self.clf.normalize(one)), 0, 0.0, 0

    def onboard_module(self) -> None:
        return None  # image coding is not priced (see the class docstring)


@register_eval_scheme("onboard")
class OnboardScheme(EvalScheme):
    """The whole model on board; only the answer goes down."""

    def predict_batch(self, images: torch.Tensor) -> tuple[np.ndarray, list[int]]:
        logits = self.clf.model(self.clf.normalize(images))
        return logits.argmax(1).numpy(), [ANSWER_BYTES] * len(images)

    def costs(self, one: torch.Tensor) -> Costs:
        flops = count_flops(self.clf.model, self.clf.normalize(one))
        return flops, 0.0, 0, 0.0, model_bytes(self.clf.model)

    def onboard_module(self) -> nn.Module:
        return self.clf.model


def build_scheme(spec: Any, classifier: Classifier) -> EvalScheme:
    """The scheme a :class:`research.eval.scenario.SchemeSpec` describes, by its registered kind.

    Raises:
        ValueError: For an unknown ``spec.kind``; the message lists the registered kinds.
    """
    return eval_scheme_class(spec.kind).from_spec(spec, classifier)
