"""Service kinds: the model parts a large model is virtualised into, each a small callable.

Every service wraps real modules of a split ViT (or a link codec / spiking head) and reports what
placement and simulation need: parameter bytes (memory on the node), FLOPs per image (counted by
``FlopCounterMode`` on a real forward pass, never estimated) and the bytes it emits per image (what
the next hop carries). Kinds:

* ``embed``: modality embedder, images -> tokens (RGB: the checkpoint's patch embedding; the
  other modalities of :mod:`research.serving.modalities`: their own patch embeddings), or, when
  a trained codec sits at block ``k > 0``, the whole on-board front (:class:`OnBoardFront`:
  embedder + the first ``k`` blocks), which must run where the pixels are;
* ``encoder``: blocks ``i..j`` of the shared encoder (the last segment also norms and pools);
* ``codec``: a link module from ``encoders`` (tokens <-> ``list[bytes]``), its cost the
  encoder's (on the source); ``decode``: what its decoder costs, charged with the first stage;
* ``head``: a task head, ANN or spiking (features -> logits or retrieval embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from encoders.base import LinkModule
from research.models.profile import count_flops
from research.serving.modalities import MS13_RGB_BANDS, embedder_init

__all__ = [
    "MS13_RGB_BANDS",
    "Service",
    "ServiceCost",
    "ClassifierHead",
    "EmbeddingHead",
    "Embedder",
    "EncoderSegment",
    "LinkCodec",
    "LinkDecoder",
    "OnBoardFront",
    "SpikingTaskHead",
    "modality_embedder",
    "multispectral_embedder",
    "rgb_embedder",
]

def _param_bytes(params: Sequence[torch.Tensor]) -> int:
    return int(sum(p.numel() * p.element_size() for p in params))


@dataclass(frozen=True)
class ServiceCost:
    """Per-image cost of a service: memory it occupies, FLOPs it runs, bytes it emits."""

    param_bytes: int
    flops: int
    out_bytes: int


class Service(nn.Module):
    """Base of every service: a named module with a measured :class:`ServiceCost`."""

    kind: str = ""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self._cost: ServiceCost | None = None

    def example_input(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def own_parameters(self) -> list[torch.Tensor]:
        """Parameters that live in this service's memory (overridden where weights are shared)."""
        return list(self.parameters())

    def output_bytes(self, out: torch.Tensor) -> int:
        """Bytes the output of one example takes when sent on (float32 unless overridden)."""
        return int(out.numel() * 4)

    @property
    def cost(self) -> ServiceCost:
        """Measured once on one example image, then cached."""
        if self._cost is None:
            x = self.example_input()
            with torch.no_grad():
                out = self(x)
            out_bytes = self.output_bytes(out) if isinstance(out, torch.Tensor) else 0
            self._cost = ServiceCost(_param_bytes(self.own_parameters()), count_flops(self, x),
                                     out_bytes)
        return self._cost


class Embedder(Service):
    """Patch embedding + position embedding of one modality: images ``[B, C, H, W]`` -> tokens."""

    kind = "embed"

    def __init__(self, name: str, patch_embed: nn.Module, vit: VisionTransformer,
                 in_chans: int) -> None:
        super().__init__(name)
        self.patch_embed = patch_embed
        self.pos_embed = vit.pos_embed  # shared Parameter: one position table per encoder
        self.norm_pre = vit.norm_pre
        self.in_chans = in_chans
        self.img_size = int(patch_embed.img_size[0])

    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, self.in_chans, self.img_size, self.img_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Same operations as timm's _pos_embed for a ViT with no class token (no dropout in eval).
        return self.norm_pre(self.patch_embed(images) + self.pos_embed)


def rgb_embedder(vit: VisionTransformer) -> Embedder:
    """The checkpoint's own RGB patch embedding as a service."""
    return Embedder("embed_rgb", vit.patch_embed, vit, in_chans=3)


def multispectral_embedder(vit: VisionTransformer) -> Embedder:
    """The synthetic 13-band embedder (``ms13``): its RGB bands reproduce the RGB embedder
    exactly and the other bands start at zero, never trained (tests of the 13-band path only)."""
    return Embedder("embed_ms13", embedder_init(vit, "ms13"), vit, in_chans=13)


def modality_embedder(vit: VisionTransformer, modality: str, patch_embed: PatchEmbed) -> Embedder:
    """A trained embedder of ``modality`` (``research.serving.modalities``) as a service."""
    return Embedder(f"embed_{modality}", patch_embed, vit, in_chans=patch_embed.proj.in_channels)


class EncoderSegment(Service):
    """Blocks ``start..stop`` of the shared encoder; the last segment also norms and pools."""

    kind = "encoder"

    def __init__(self, vit: VisionTransformer, start: int, stop: int) -> None:
        depth = len(vit.blocks)
        if not 0 <= start < stop <= depth:
            raise ValueError(f"encoder segment {start}..{stop} is not inside 0..{depth}")
        super().__init__(f"encoder_{start}_{stop}")
        self.blocks = nn.Sequential(*vit.blocks[start:stop])
        self.final = stop == depth
        self.norm = vit.norm if self.final else nn.Identity()
        self.num_tokens = int(vit.patch_embed.num_patches)
        self.dim = int(vit.embed_dim)
        self._pool = vit.pool

    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, self.num_tokens, self.dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.blocks(tokens)
        return self._pool(self.norm(x)) if self.final else x


class OnBoardFront(Service):
    """What a satellite runs before a codec trained at block ``k``: embedder, first ``k`` blocks.

    A trained codec (``CodecTask``) encodes the tokens of one block, so the blocks before it are
    pinned to the capturing satellite with the embedder: placement and the baselines treat the
    front as the modality's embedder (the baselines run the same blocks, on board or on the
    ground). The codec's encoder is its own service, charged on the source by the microservice
    scheme only.
    """

    kind = "embed"

    def __init__(self, embedder: Embedder, segment: EncoderSegment) -> None:
        if segment.final:
            raise ValueError(f"an on-board front ends before the last block, got {segment.name}")
        super().__init__(f"front_{embedder.name.removeprefix('embed_')}_{segment.name}")
        self.embedder, self.segment = embedder, segment

    def example_input(self) -> torch.Tensor:
        return self.embedder.example_input()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.segment(self.embedder(images))


class LinkCodec(Service):
    """A link module at a cut: ``encode`` to real bytes and ``decode`` back; forward = both."""

    kind = "codec"

    def __init__(self, link: LinkModule, token_shape: tuple[int, int]) -> None:
        super().__init__(f"codec_{link.link_name or type(link).__name__}")
        self.link = link
        self.token_shape = token_shape

    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, *self.token_shape)

    def encode(self, tokens: torch.Tensor) -> list[bytes]:
        return self.link.compress(tokens)

    def decode(self, payloads: list[bytes]) -> torch.Tensor:
        """Raises ``ValueError`` for truncated or foreign payloads (the codec checks headers)."""
        return self.link.decompress(payloads, self.token_shape)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(tokens))

    @property
    def cost(self) -> ServiceCost:
        """What the encoder costs where it runs, on board: the weights of the modules it calls
        and its FLOPs (the decoder is :class:`LinkDecoder`'s); and the bytes of one random
        example. A learned codec's size depends on the content, so serving
        runs replace those bytes with sizes measured on real tiles
        (``PlacementProblem.modality_token_bytes``)."""
        if self._cost is None:
            x = torch.randn(1, *self.token_shape)
            nbytes = len(self.encode(x)[0])
            self._cost = ServiceCost(_param_bytes(_parameters_called(self.link, self.encode, x)),
                                     count_flops(self.encode, x), nbytes)
        return self._cost


class LinkDecoder(Service):
    """What decoding a codec's payloads costs where the first stage after the cut runs (a
    satellite or the ground): the weights of the modules ``decompress`` calls and its FLOPs.

    Accounting only: placement and the simulator charge it with stage 0; the runtimes decode
    inside the :class:`LinkCodec` call and never call this service."""

    kind = "decode"

    def __init__(self, codec: LinkCodec) -> None:
        super().__init__(f"decode_{codec.name.removeprefix('codec_')}")
        self._codec = [codec]  # not a child: the weights are the codec's

    def example_input(self) -> torch.Tensor:
        return torch.randn(1, *self._codec[0].token_shape)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._codec[0](tokens)

    @property
    def cost(self) -> ServiceCost:
        if self._cost is None:
            codec = self._codec[0]
            payloads = codec.encode(self.example_input())
            self._cost = ServiceCost(
                _param_bytes(_parameters_called(codec.link, codec.decode, payloads)),
                count_flops(codec.decode, payloads), 0)
        return self._cost


def _parameters_called(module: nn.Module, fn, *args) -> list[torch.Tensor]:
    """Parameters of the submodules of ``module`` whose forward ``fn(*args)`` calls (a codec's
    analysis transform, not its synthesis transform)."""
    called: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, _i, _o: called.append(m))
             for m in module.modules()]
    try:
        with torch.no_grad():
            fn(*args)
    finally:
        for h in hooks:
            h.remove()
    seen = {id(m): m for m in called}
    return [p for m in seen.values() for p in m.parameters(recurse=False)]


class _Head(Service):
    kind = "head"

    def __init__(self, name: str, in_features: int) -> None:
        super().__init__(name)
        self.in_features = in_features

    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, self.in_features)


class ClassifierHead(_Head):
    """ANN task head: ``LayerNorm`` (timm's ``fc_norm``) + linear classifier on pooled features.

    What goes down is the answer, one class index (1 byte), not the logits."""

    def output_bytes(self, out: torch.Tensor) -> int:
        return int(out.shape[0])

    def __init__(self, name: str, norm: nn.Module, linear: nn.Linear) -> None:
        super().__init__(name, linear.in_features)
        self.norm = norm
        self.linear = linear

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(features))


class SpikingTaskHead(_Head):
    """Spiking task head (``snn.SpikingHead``): logits from spike counts or membranes; a class
    index (1 byte) goes down."""

    def output_bytes(self, out: torch.Tensor) -> int:
        return int(out.shape[0])

    def __init__(self, name: str, head: nn.Module, in_features: int) -> None:
        super().__init__(name, in_features)
        self.head = head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


class EmbeddingHead(_Head):
    """Retrieval embedding: the normalised pooled features, unit length for cosine search.

    ``answer``: how the embedding goes down when it is computed on board, ``float16`` (2 bytes a
    dimension) or ``int8`` (1 byte a dimension and a float32 scale)."""

    ANSWERS = ("float16", "int8")

    def __init__(self, name: str, norm: nn.Module, in_features: int,
                 answer: str = "float16") -> None:
        if answer not in self.ANSWERS:
            raise ValueError(f"retrieval answer {answer!r}; expected one of {list(self.ANSWERS)}")
        super().__init__(name, in_features)
        self.norm = norm
        self.answer = answer

    def output_bytes(self, out: torch.Tensor) -> int:
        if self.answer == "int8":
            return int(out.numel() + 4 * out.shape[0])
        return int(out.numel() * 2)

    def own_parameters(self) -> list[torch.Tensor]:
        return list(self.norm.parameters())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.norm(features), dim=-1)
