"""Measured cost of each part of a split ViT: parameters, bytes, FLOPs and the tensor at the cut.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on a real forward pass (one
image), never estimated from formulas; a MAC is half a FLOP in its accounting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from research.models.split_vit import SplitViT


@dataclass(frozen=True)
class PartCost:
    """Cost of one part for a single image."""

    name: str
    params: int
    param_bytes: int
    flops: int


@dataclass(frozen=True)
class SplitProfile:
    """Per-part costs plus what crosses the cut (float32 tokens) and back (features, if needed)."""

    split_index: int
    head_placement: str
    parts: tuple[PartCost, ...]
    cut_shape: tuple[int, ...]
    cut_bytes_float32: int
    return_bytes_float32: int

    def part(self, name: str) -> PartCost:
        return next(p for p in self.parts if p.name == name)

    def on_board(self) -> PartCost:
        """Everything that runs on the satellite: its part, plus the head if placed there."""
        names = ["satellite"] + (["head"] if self.head_placement == "satellite" else [])
        chosen = [self.part(n) for n in names]
        return PartCost(
            "on_board", *(sum(getattr(p, f) for p in chosen) for f in ("params", "param_bytes", "flops"))
        )

    def as_dict(self) -> dict:
        return asdict(self)


def _params(modules: list[nn.Module | nn.Parameter]) -> tuple[int, int]:
    tensors: list[torch.Tensor] = []
    for m in modules:
        tensors.extend([m] if isinstance(m, nn.Parameter) else list(m.parameters()))
    return sum(t.numel() for t in tensors), sum(t.numel() * t.element_size() for t in tensors)


@contextmanager
def unfused_attention(module: nn.Module) -> Iterator[None]:
    """Run timm attention as explicit matmuls: FlopCounterMode counts fused CPU attention as 0."""
    fused = [(m, m.fused_attn) for m in module.modules() if hasattr(m, "fused_attn")]
    for m, _ in fused:
        m.fused_attn = False
    try:
        yield
    finally:
        for m, flag in fused:
            m.fused_attn = flag


def count_flops(fn, *args) -> int:
    """FLOPs of ``fn(*args)`` as counted by FlopCounterMode (attention unfused, no grad).

    The one FLOP counter of the project: evaluation and federated costs call it on the same
    parts ``profile_split`` does, so every ledger prices the same operations.
    """
    counter = FlopCounterMode(display=False)
    owner = getattr(fn, "__self__", fn)
    with unfused_attention(owner), counter, torch.no_grad():
        fn(*args)
    return int(counter.get_total_flops())


def profile_split(model: SplitViT, in_chans: int = 3, img_size: int | None = None) -> SplitProfile:
    """Measure every part of ``model`` on one random image."""
    v = model.vit
    size = img_size or v.patch_embed.img_size[0]
    was_training = model.training
    model.eval()
    x = torch.randn(1, in_chans, size, size, device=next(model.parameters()).device)
    tokens = model.satellite_part(x)
    feats = model.ground_part(tokens)
    k = model.split_index
    sat_modules = [v.patch_embed, v.norm_pre, *v.blocks[:k]]
    if v.pos_embed is not None:
        sat_modules.append(v.pos_embed)
    ground_modules = [*v.blocks[k:], v.norm]
    parts = (
        PartCost("satellite", *_params(sat_modules), count_flops(model.satellite_part, x)),
        PartCost("link", *_params([model.link]), 0),
        PartCost("ground", *_params(ground_modules), count_flops(model.ground_part, tokens)),
        PartCost("head", *_params(model.head_modules()), count_flops(model.head, feats)),
    )
    model.train(was_training)
    return SplitProfile(
        split_index=k,
        head_placement=model.head_placement,
        parts=parts,
        cut_shape=tuple(tokens.shape[1:]),
        cut_bytes_float32=4 * tokens[0].numel(),
        return_bytes_float32=4 * feats[0].numel() if model.head_placement == "satellite" else 0,
    )
