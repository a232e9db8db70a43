"""Tiny shared pieces for the spiking tests: a seeded toy problem and a tiny timm ViT."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer


@pytest.fixture
def tiny_vit() -> VisionTransformer:
    """32 px, patch 8 (16 tokens), width 32, 2 blocks, average pooling, no class token."""
    torch.manual_seed(0)
    vit = VisionTransformer(
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        num_classes=4,
        global_pool="avg",
        class_token=False,
    )
    return vit.eval()


@pytest.fixture
def blobs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four Gaussian blobs in 8-D: ``(x_train, y_train, x_test, y_test)``."""
    g = torch.Generator().manual_seed(0)
    classes, dim, per_class = 4, 8, 100
    centers = torch.randn(classes, dim, generator=g) * 3.0
    y = torch.arange(classes).repeat_interleave(per_class)
    x = centers[y] + torch.randn(classes * per_class, dim, generator=g)
    perm = torch.randperm(classes * per_class, generator=g)
    x, y = x[perm], y[perm]
    return x[:300], y[:300], x[300:], y[300:]
