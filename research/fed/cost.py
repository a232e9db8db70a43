"""What one image and one update cost: counted FLOPs per part and real bytes over each link.

FLOPs come from :func:`research.models.profile_split` (counted on a real forward pass). A
training step costs three times the forward FLOPs of the trained part (forward, gradient with
respect to activations, gradient with respect to weights). Bytes at the cut are the link
module's real payloads (float32 tensor bytes for the identity link).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from encoders.base import IdentityLink, LinkModule
from research.fed.aggregate import State, state_bytes
from research.models import SplitViT, profile_split

TRAIN_FACTOR = 3.0


@dataclass(frozen=True)
class Costs:
    """Per-image FLOPs and bytes of a split model and the bytes of one exchanged update.

    ``image_bytes``: one raw image, a byte per pixel and band (what the ground-centralised
    baseline downlinks)."""

    embed_flops: float
    encode_flops: float
    head_flops: float
    train_flops: float
    cut_bytes: float
    feature_bytes: float
    update_bytes: int
    embed_param_bytes: int = 0
    encode_param_bytes: int = 0
    head_param_bytes: int = 0
    image_bytes: float = 0.0

    @property
    def onboard_forward_flops(self) -> float:
        """Embedding plus encoder: what a satellite runs to get features without the ground."""
        return self.embed_flops + self.encode_flops

    def as_dict(self) -> dict:
        return asdict(self)


def cut_bytes_per_image(link: LinkModule, tokens: torch.Tensor) -> float:
    """Mean real payload bytes per image of ``tokens`` through ``link``."""
    if isinstance(link, IdentityLink):
        return float(tokens[0].numel() * 4)
    link.update(force=True)
    with torch.no_grad():
        return float(sum(len(p) for p in link.compress(tokens)) / len(tokens))


def measure_costs(model: SplitViT, update: State, sample_tokens: torch.Tensor) -> Costs:
    """Profile ``model`` and price the exchanged ``update`` state."""
    prof = profile_split(model)
    head = float(prof.part("head").flops)
    return Costs(
        embed_flops=float(prof.part("satellite").flops),
        encode_flops=float(prof.part("ground").flops),
        head_flops=head,
        train_flops=TRAIN_FACTOR * head,
        cut_bytes=cut_bytes_per_image(model.link, sample_tokens),
        feature_bytes=float(prof.return_bytes_float32),
        update_bytes=state_bytes(update),
        embed_param_bytes=prof.part("satellite").param_bytes,
        encode_param_bytes=prof.part("ground").param_bytes,
        head_param_bytes=prof.part("head").param_bytes,
        image_bytes=float(raw_image_bytes(model)),
    )


def raw_image_bytes(model: SplitViT) -> int:
    """Bytes of one input image at 8 bits per pixel and band (the sensor's quantised samples)."""
    embed = model.vit.patch_embed
    height, width = embed.img_size
    return int(height * width * embed.proj.in_channels)
