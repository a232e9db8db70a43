"""Masked autoencoder (He et al., CVPR 2022) around the same timm ViT that SplitViT cuts.

The encoder sees only the visible patches (25% by default), a light decoder reconstructs the
masked ones, and the loss is the MSE on masked patches of per-patch normalised pixels. After
pre-training, ``encoder.state_dict()`` is the foundation model that fine-tuning loads.
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, C, H, W]`` to ``[B, N, patch*patch*C]`` in the ViT's row-major token order."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


class MaskedAutoencoder(nn.Module):
    """MAE with a timm ViT encoder (global-pool, no class token) and a small transformer decoder."""

    def __init__(
        self,
        encoder: VisionTransformer,
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio={mask_ratio}; expected a number strictly between 0 and 1")
        self.encoder = encoder
        self.patch = encoder.patch_embed.patch_size[0]
        self.in_chans = encoder.patch_embed.proj.in_channels
        n = encoder.patch_embed.num_patches
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.decoder_embed = nn.Linear(encoder.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos = nn.Parameter(torch.zeros(1, n, decoder_dim))
        self.decoder_blocks = nn.Sequential(
            *[Block(decoder_dim, decoder_heads, mlp_ratio=4.0, qkv_bias=True) for _ in range(decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch * self.patch * self.in_chans)
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.decoder_pos, std=0.02)

    def random_mask(self, batch: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of kept tokens ``[B, n_keep]`` and a 0/1 mask ``[B, N]`` (1 = masked)."""
        n_keep = max(1, int(round(n * (1 - self.mask_ratio))))
        order = torch.rand(batch, n, device=device).argsort(dim=1)
        keep = order[:, :n_keep]
        mask = torch.ones(batch, n, device=device)
        mask.scatter_(1, keep, 0.0)
        return keep, mask

    def encode(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        v = self.encoder
        x = v._pos_embed(v.patch_embed(images))
        x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = v.norm_pre(x)
        return v.norm(v.blocks(x))

    def decode(self, latent: torch.Tensor, keep: torch.Tensor, n: int) -> torch.Tensor:
        x = self.decoder_embed(latent)
        full = self.mask_token.expand(x.shape[0], n, -1).clone()
        full.scatter_(1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]), x)
        full = self.decoder_blocks(full + self.decoder_pos)
        return self.decoder_pred(self.decoder_norm(full))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns ``loss`` (masked-patch MSE), ``pred`` ``[B, N, p*p*C]`` and ``mask`` ``[B, N]``."""
        n = self.encoder.patch_embed.num_patches
        keep, mask = self.random_mask(images.shape[0], n, images.device)
        pred = self.decode(self.encode(images, keep), keep, n)
        target = patchify(images, self.patch)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = ((pred - target) ** 2).mean(dim=-1)
        loss = (per_patch * mask).sum() / mask.sum()
        return {"loss": loss, "pred": pred, "mask": mask}
