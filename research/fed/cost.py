"""What one image and one update cost: counted FLOPs per part and real bytes over each link.

FLOPs come from :func:`research.models.profile_split` (counted on a real forward pass). A
training step costs three times the forward FLOPs of the trained part (forward, gradient with
respect to activations, gradient with respect to weights; for the frozen weights under LoRA the
last is not needed, so 3x is an upper bound there). Bytes at the cut are the link module's real
payloads (float32 tensor bytes for the identity link); the gradient that goes back up in split
learning is float32, one value per activation.
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
    baseline downlinks). ``train_flops``: one image's training step of everything that trains
    when it all runs in one place (the head; or, for a trained encoder, the whole model). For a
    trained encoder split at the cut, ``embed_train_flops`` (on board) and
    ``ground_train_flops`` are the two sides of a split-learning step, ``grad_bytes`` the cut's
    gradient per image, and ``embed_update_bytes`` the satellite side's trainable weights (what
    a collaborative update carries between satellites; the ground side stays on the ground)."""

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
    embed_train_flops: float = 0.0
    ground_train_flops: float = 0.0
    grad_bytes: float = 0.0
    embed_update_bytes: int = 0

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


def cut_gradient(model: SplitViT, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The gradient of the cross-entropy on ``(images, labels)`` at the cut's tokens: what a
    split-learning step sends up (its payload through ``model.gradient_link`` is priced on it)."""
    tokens = model.satellite_part(images).detach().requires_grad_()
    loss = torch.nn.functional.cross_entropy(model.head(model.ground_part(tokens)), labels)
    (grad,) = torch.autograd.grad(loss, tokens)
    return grad


def measure_costs(model: SplitViT, update: State, sample_tokens: torch.Tensor,
                  sample_gradient: torch.Tensor | None = None) -> Costs:
    """Profile ``model`` and price the exchanged ``update`` state (a head's, or a split model's
    trainable parameters: then the encoder trains and its FLOPs count in every step). The cut's
    gradient is float32, or ``model.gradient_link``'s real payload on ``sample_gradient``."""
    prof = profile_split(model)
    embed, encode = float(prof.part("satellite").flops), float(prof.part("ground").flops)
    head = float(prof.part("head").flops)
    onboard_keys = [k for k in update if k.startswith(satellite_prefixes(model))]
    encoder_trains = any(k.startswith("vit.") for k in update)
    split = {} if not encoder_trains else {
        "embed_train_flops": TRAIN_FACTOR * embed,
        "ground_train_flops": TRAIN_FACTOR * (encode + head),
        "grad_bytes": (float(sample_tokens[0].numel() * 4) if sample_gradient is None
                       else cut_bytes_per_image(model.gradient_link, sample_gradient)),
        "embed_update_bytes": state_bytes({k: update[k] for k in onboard_keys})}
    return Costs(
        embed_flops=embed,
        encode_flops=encode,
        head_flops=head,
        train_flops=TRAIN_FACTOR * (embed + encode + head if encoder_trains else head),
        cut_bytes=cut_bytes_per_image(model.link, sample_tokens),
        feature_bytes=float(prof.return_bytes_float32),
        update_bytes=state_bytes(update),
        embed_param_bytes=prof.part("satellite").param_bytes,
        encode_param_bytes=prof.part("ground").param_bytes,
        head_param_bytes=prof.part("head").param_bytes,
        image_bytes=float(raw_image_bytes(model)),
        **split,
    )


def satellite_prefixes(model: SplitViT) -> tuple[str, ...]:
    """Parameter-name prefixes of the split model's on-board part (embedding, blocks before the
    cut, the link)."""
    return ("vit.patch_embed.", "vit.pos_embed", "link.",
            *(f"vit.blocks.{i}." for i in range(model.split_index)))


def raw_image_bytes(model: SplitViT) -> int:
    """Bytes of one input image at 8 bits per pixel and band (the sensor's quantised samples)."""
    embed = model.vit.patch_embed
    height, width = embed.img_size
    return int(height * width * embed.proj.in_channels)
