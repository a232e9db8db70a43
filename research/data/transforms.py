"""Batch-level augmentation and normalisation, applied after the batch reaches its device.

Remote-sensing tiles have no canonical orientation, so the standard augmentations are the 8
symmetries of the square (horizontal flip x 4 rotations by 90 degrees).
"""

from __future__ import annotations

import torch


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images ``[N, C, H, W]``, on the 0-1 scale."""
    x = images.to(torch.float64) / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3))
    return mean.tolist(), std.tolist()


def normalize(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 (or 0-1 float) ``[B, C, H, W]`` to float32 standardised by the train-split statistics."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def random_dihedral(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply an independent random flip and 90-degree rotation to each image of a batch."""
    n = images.shape[0]
    # Drawn on the CPU (one stream whatever the device), then moved beside the images for masking.
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    turns = torch.randint(0, 4, (n,), generator=generator).to(images.device)
    out = images.clone()
    if flip.any():
        out[flip] = out[flip].flip(-1)
    for k in (1, 2, 3):
        sel = turns == k
        if sel.any():
            out[sel] = torch.rot90(out[sel], k, dims=(-2, -1))
    return out
