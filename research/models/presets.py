"""Backbone presets: timm ViTs sized for 64x64 EuroSAT tiles (patch 8 gives an 8x8 grid of 64 tokens).

Global average pooling and no class token, so every cut carries exactly the 64 patch tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from timm.models.vision_transformer import VisionTransformer


@dataclass(frozen=True)
class BackbonePreset:
    """Architecture of one ViT preset; ``why`` says what it is for."""

    embed_dim: int
    depth: int
    num_heads: int
    why: str
    mlp_ratio: float = 4.0
    patch_size: int = 8
    img_size: int = 64


_PRESETS: dict[str, BackbonePreset] = {}


def register_backbone(name: str, preset: BackbonePreset) -> None:
    """Make a preset selectable by name from YAML."""
    if name in _PRESETS:
        raise ValueError(f"backbone preset {name!r} is already registered")
    _PRESETS[name] = preset


def list_backbones() -> list[str]:
    """Every registered preset name, sorted."""
    return sorted(_PRESETS)


def get_preset(name: str) -> BackbonePreset:
    """Look a preset up; an unknown name lists the valid ones."""
    if name not in _PRESETS:
        raise ValueError(f"unknown backbone {name!r}; expected one of {list_backbones()}")
    return _PRESETS[name]


register_backbone("satvit_tiny", BackbonePreset(32, 2, 2, "unit tests: runs in milliseconds"))
register_backbone("satvit_small", BackbonePreset(192, 6, 3, "default: trains on 2 CPU cores"))
register_backbone("satvit_base", BackbonePreset(768, 12, 12, "GPU runs: ViT-B/8 at 64x64"))
register_backbone("satvit_large", BackbonePreset(
    1024, 24, 16, "ViT-L/8 at 64x64 (303 M parameters, SatMAE / Prithvi-300M size): profiled "
    "for simulated cost; not trained here"))
register_backbone("satvit_huge", BackbonePreset(
    1280, 32, 16, "ViT-H/8 at 64x64 (630 M parameters, Prithvi-600M size): profiled for "
    "simulated cost; not trained here"))


def build_backbone(
    name: str = "satvit_small",
    num_classes: int = 10,
    in_chans: int = 3,
    drop_path_rate: float = 0.0,
    img_size: int | None = None,
) -> VisionTransformer:
    """A timm ``VisionTransformer`` for the named preset (random init; weights load separately)."""
    p = get_preset(name)
    return VisionTransformer(
        img_size=img_size or p.img_size,
        patch_size=p.patch_size,
        in_chans=in_chans,
        num_classes=num_classes,
        global_pool="avg",
        class_token=False,
        embed_dim=p.embed_dim,
        depth=p.depth,
        num_heads=p.num_heads,
        mlp_ratio=p.mlp_ratio,
        drop_path_rate=drop_path_rate,
    )


BackboneFactory = Callable[..., VisionTransformer]
