"""An entropic student at the paper's cut: task-oriented coding right after the patch embedding.

Supervised compression (Matsubara et al., "entropic student", 2022) trains a small encoder with an
entropy bottleneck end to end with the task model, by cross-entropy + lambda x rate and
distillation from the uncompressed model. The token codecs of ``encoders.token_codecs`` transform
each token (or a fixed window of tokens) with an MLP; at split 0 the tokens are a linear function
of 8x8 pixel patches, and a per-token transform has neither the context nor the non-linearity
to pick out what the ground blocks need at tens of bytes. Here:

* on board, ``g_a``: an MLP on each patch token (1x1 convolutions over the token grid) and a 3x3
  convolution for context, down to ``latent_dim`` channels per grid position; with the patch
  embedding in front it is a small CNN on the pixels (about 4 MFLOPs at ``hidden_dim=64``, so the
  satellite spends under 10 MFLOPs per 64x64 image in all, counted on ``on_board``);
* a factorised ``EntropyBottleneck`` codes the latents (symbols and tables are integers, so any
  device decodes the same symbols);
* gain units (Cui et al., CVPR 2021) make one model variable-rate: the latents are scaled per
  channel by ``gain[r]`` before rounding and by ``inverse_gain[r]`` after, for ``num_rates`` rate
  levels trained with one rate weight each. The rate index chosen at run time (``rate_index``)
  travels in the header's flags, so a decoder needs no side channel;
* on the ground, ``g_s``: a wider convolutional synthesis back to ``[B, N, D]`` tokens plus a
  learned per-position bias (the tokens the ground blocks saw carried a position embedding).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

from encoders.base import register_link
from encoders.entropy import EntropyLink
from encoders.header import Header
from encoders.rans import CoderTables, StreamDecoder, encode_batch

__all__ = ["EntropicStudentCodec", "MAX_RATES"]

MAX_RATES = 8
"""Rate levels one model may hold: the index fits the header's three low flag bits."""
_RATE_BITS = 0x07


@register_link("student", codec_id=18, learned=True)
class EntropicStudentCodec(EntropyLink):
    """Variable-rate supervised-compression codec over the token grid at a cut (see module doc).

    Args:
        dim: ``D``, token width at the cut.
        num_tokens: ``N``, tokens at the cut; a square grid without prefix tokens.
        latent_dim: Latent channels per grid position.
        hidden_dim: Width of the on-board analysis (its FLOPs grow with it; 64 keeps the
            satellite under 10 MFLOPs per 64x64 image with ViT-Small's patch embedding).
        ground_dim: Width of the ground-side synthesis (default: ``dim``).
        num_rates: Rate levels of the gain units (1: a fixed-rate codec); at most ``MAX_RATES``.
        init_scale: Initial width of the factorised densities, in quantisation bins.
            CompressAI's 10 suits image latents trained for a million steps; a task codec trained
            for a few thousand starts at 1, or its rate barely moves from the initial ~4 bits
            per latent.
        latent_grid: Side of the coded latent grid: the on-board features are average-pooled
            from the token grid down to ``latent_grid x latent_grid`` cells before coding
            (default: the token grid, one cell per token). Land cover is mostly texture and
            colour statistics, so a coarse grid keeps the class at a fraction of the symbols.
    """

    flag_mask = _RATE_BITS

    def __init__(
        self,
        dim: int,
        num_tokens: int = 64,
        latent_dim: int = 32,
        hidden_dim: int = 64,
        ground_dim: int | None = None,
        num_rates: int = 1,
        init_scale: float = 1.0,
        latent_grid: int | None = None,
    ) -> None:
        super().__init__()
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ValueError(f"student codec needs a square token grid without prefix tokens, "
                             f"got {num_tokens} tokens")
        if min(dim, latent_dim, hidden_dim) < 1 or hidden_dim < 2:
            raise ValueError(f"dim, latent_dim and hidden_dim must be positive (hidden_dim >= 2), "
                             f"got {dim}, {latent_dim}, {hidden_dim}")
        if not 1 <= num_rates <= MAX_RATES:
            raise ValueError(f"num_rates={num_rates}; expected 1..{MAX_RATES} (the rate index "
                             "travels in three header bits)")
        grid = side if latent_grid is None else latent_grid
        if not isinstance(grid, int) or grid < 1 or side % grid:
            raise ValueError(f"latent_grid={latent_grid!r} must divide the {side}x{side} token grid")
        self.dim, self.num_tokens, self.side, self.latent_grid = dim, num_tokens, side, grid
        self.latent_dim, self.hidden_dim = latent_dim, hidden_dim
        self.ground_dim = ground_dim or dim
        self.num_rates = num_rates
        self.rate_index = num_rates - 1  # the finest level until told otherwise
        mid = hidden_dim // 2
        self.g_a = nn.Sequential(
            nn.Conv2d(dim, hidden_dim, 1), nn.GELU(),
            nn.Conv2d(hidden_dim, mid, 3, padding=1), nn.GELU(),
            nn.Conv2d(mid, latent_dim, 1),
        )
        g = self.ground_dim
        cell = side // grid  # tokens per latent cell along each side
        self.g_a.append(nn.AvgPool2d(cell) if cell > 1 else nn.Identity())
        self.expand = nn.Conv2d(latent_dim, g * cell * cell, 1)  # each cell to its tokens
        self.g_s = nn.Sequential(
            nn.PixelShuffle(cell), nn.GELU(),
            nn.Conv2d(g, g, 3, padding=1), nn.GELU(),
            nn.Conv2d(g, dim, 1),
        )
        self.position_bias = nn.Parameter(torch.zeros(1, num_tokens, dim))
        # Coarser levels start with smaller gains (wider quantisation bins); training moves them.
        start = torch.exp(torch.linspace(-1.0, 0.0, num_rates)) if num_rates > 1 else torch.ones(1)
        self.gain = nn.Parameter(start[:, None].repeat(1, latent_dim))
        self.inverse_gain = nn.Parameter((1.0 / start)[:, None].repeat(1, latent_dim))
        self.entropy_bottleneck = EntropyBottleneck(latent_dim, init_scale=init_scale)

    def config(self) -> dict[str, object]:
        return {
            "dim": self.dim, "num_tokens": self.num_tokens, "latent_dim": self.latent_dim,
            "hidden_dim": self.hidden_dim, "ground_dim": self.ground_dim,
            "num_rates": self.num_rates, "latent_grid": self.latent_grid,
        }

    # ----------------------------------------------------------------- rate
    def set_rate(self, index: int) -> EntropicStudentCodec:
        """Code at rate level ``index`` (0: fewest bytes .. ``num_rates - 1``: most)."""
        self._check_rate(index, "rate index")
        self.rate_index = int(index)
        return self

    def _check_rate(self, index: int, what: str) -> None:
        if not isinstance(index, int) or not 0 <= index < self.num_rates:
            raise ValueError(f"{what} {index!r} is out of range; this codec has "
                             f"{self.num_rates} rate level(s), 0..{self.num_rates - 1}")

    # ----------------------------------------------------------------- transforms
    def on_board(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, N, D]`` tokens -> ``[B, C, s, s]`` latents before the gain (the satellite's work)."""
        b = tokens.shape[0]
        grid = tokens.transpose(1, 2).reshape(b, self.dim, self.side, self.side)
        return self.g_a(grid)

    def ground(self, y_hat: torch.Tensor) -> torch.Tensor:
        """``[B, C, s, s]`` de-scaled latents -> ``[B, N, D]`` tokens for the ground blocks."""
        out = self.g_s(self.expand(y_hat)).flatten(2).transpose(1, 2)
        return out + self.position_bias

    def _gain(self, rate: int) -> torch.Tensor:
        return self.gain[rate].reshape(1, -1, 1, 1)

    def _inverse_gain(self, rate: int) -> torch.Tensor:
        return self.inverse_gain[rate].reshape(1, -1, 1, 1)

    def forward(self, tokens: torch.Tensor) -> dict[str, Any]:
        rate = self.rate_index
        y = self.on_board(tokens) * self._gain(rate)
        y_hat, y_lik = self.entropy_bottleneck(y)
        return {"y_hat": self.ground(y_hat * self._inverse_gain(rate)), "likelihoods": {"y": y_lik}}

    # ----------------------------------------------------------------- real coding
    def _check_shape(self, num_tokens: int, dim: int) -> None:
        if (num_tokens, dim) != (self.num_tokens, self.dim):
            raise ValueError(f"student codec was built for {self.num_tokens}x{self.dim} tokens, "
                             f"got {num_tokens}x{dim}")

    def _medians(self) -> torch.Tensor:
        return self.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)

    def _channel_indexes(self) -> torch.Tensor:
        device = self.entropy_bottleneck.quantiles.device
        channels = torch.arange(self.latent_dim, dtype=torch.int32, device=device)
        return channels[:, None, None].expand(-1, self.latent_grid, self.latent_grid)

    def _encode(self, tokens: torch.Tensor) -> list[tuple[bytes, int]]:
        rate = self.rate_index
        self._check_rate(rate, "rate_index")
        # Batched: the decoder reads back whatever symbols were coded, so how the encoder's floats
        # round (batch size, threads, device) changes at most a symbol, never the decoding.
        y = self.on_board(tokens)
        symbols = self.entropy_bottleneck.quantize(y * self._gain(rate), "symbols", self._medians())
        tables, indexes = CoderTables.of(self.entropy_bottleneck), self._channel_indexes()
        return [(body, rate) for body in encode_batch(symbols, indexes, tables)]

    def _decode(self, parsed: list[tuple[Header, bytes]], num_tokens: int, dim: int) -> torch.Tensor:
        tables, indexes = CoderTables.of(self.entropy_bottleneck), self._channel_indexes()
        y_hats = []
        for i, (header, body) in enumerate(parsed):
            rate = header.flags & _RATE_BITS
            self._check_rate(rate, f"student payload {i}: rate index")
            symbols = StreamDecoder(body, indexes.numel(), f"student payload {i}").decode(indexes, tables)
            y_hats.append((symbols[None].float() + self._medians()) * self._inverse_gain(rate))
        # One payload at a time: a payload's tokens must not depend on the payloads decoded with it.
        return torch.cat([self.ground(y_hat) for y_hat in y_hats])

