"""Learned task-oriented codecs for the ViT token stream ``[B, N, D]``.

An analysis transform narrows each token (or each ``k x k`` group of neighbouring tokens) to a
few latent channels; CompressAI's entropy models quantise and code them; a synthesis transform
brings them back to ``[B, N, D]`` so the ground part runs unchanged. Trained with the task loss
plus a rate term, they keep what the ground part needs rather than what a pixel codec would.

* ``factorized``: one ``EntropyBottleneck`` per latent channel (Ballé et al. 2017).
* ``hyperprior``: ``GaussianConditional`` whose scales come from a small per-sample hyper-latent
  coded by its own ``EntropyBottleneck`` (Ballé et al. 2018). Token counts at a cut are small
  (16-65 units), so one global hyper-latent per sample is cheap and still lets the prior adapt
  per image and per token position.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from torch import nn

from encoders.base import register_link
from encoders.entropy import EntropyLink, scale_table
from encoders.header import Header
from encoders.rans import CoderTables, StreamDecoder, encode_batch, encode_stream
from encoders.tokens import TokenLayout

__all__ = ["TokenCodec", "FactorizedTokenCodec", "HyperpriorTokenCodec"]


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))


class TokenCodec(EntropyLink):
    """Analysis/synthesis transforms shared by the token codecs (no entropy model of its own).

    Args:
        dim: ``D``, token width at the cut (e.g. 192 for ViT-Tiny, 384 for ViT-Small).
        latent_dim: Latent channels per coded unit (the main rate knob with the loss weight).
        num_tokens: ``N``, tokens at the cut, prefix tokens included (64 at 64x64 px, patch 8).
        merge_tokens: Merge ``k x k`` neighbouring grid tokens into one coded unit (1: none).
        num_prefix_tokens: Leading tokens off the grid (1 for a CLS token), coded unmerged.
        hidden_dim: Width of the transforms' hidden layer (default: ``dim``).
    """

    def __init__(
        self,
        dim: int,
        latent_dim: int = 16,
        num_tokens: int = 64,
        merge_tokens: int = 1,
        num_prefix_tokens: int = 0,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.layout = TokenLayout(num_tokens, dim, merge_tokens, num_prefix_tokens)
        self.dim, self.latent_dim, self.num_tokens = dim, latent_dim, num_tokens
        self.merge_tokens, self.num_prefix_tokens = merge_tokens, num_prefix_tokens
        self.hidden_dim = hidden_dim or dim
        unit_dim = self.layout.unit_dim
        self.g_a = _mlp(unit_dim, self.hidden_dim, latent_dim)
        self.g_s = _mlp(latent_dim, self.hidden_dim, unit_dim)
        if num_prefix_tokens:
            self.g_a_prefix = _mlp(dim, self.hidden_dim, latent_dim)
            self.g_s_prefix = _mlp(latent_dim, self.hidden_dim, dim)

    @property
    def num_units(self) -> int:
        """Coded units per sample (prefix tokens plus merged grid units)."""
        return self.num_prefix_tokens + self.layout.num_units

    def config(self) -> dict[str, object]:
        return {
            "dim": self.dim,
            "latent_dim": self.latent_dim,
            "num_tokens": self.num_tokens,
            "merge_tokens": self.merge_tokens,
            "num_prefix_tokens": self.num_prefix_tokens,
            "hidden_dim": self.hidden_dim,
        }

    def analysis(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, N, D]`` tokens -> ``[B, C, U]`` latents (channels first, as CompressAI expects)."""
        prefix, units = self.layout.split(tokens)
        y = self.g_a(units)
        if self.num_prefix_tokens:
            y = torch.cat([self.g_a_prefix(prefix), y], dim=1)
        return y.transpose(1, 2)

    def synthesis(self, y_hat: torch.Tensor) -> torch.Tensor:
        """``[B, C, U]`` latents -> ``[B, N, D]`` tokens for the ground part."""
        y_hat = y_hat.transpose(1, 2)
        p = self.num_prefix_tokens
        units = self.g_s(y_hat[:, p:])
        prefix = (
            self.g_s_prefix(y_hat[:, :p]) if p else units.new_zeros(units.shape[0], 0, self.dim)
        )
        return self.layout.join(prefix, units)

    def _check_shape(self, num_tokens: int, dim: int) -> None:
        if (num_tokens, dim) != (self.num_tokens, self.dim):
            raise ValueError(
                f"{self.link_name} codec was built for {self.num_tokens}x{self.dim} tokens, "
                f"got {num_tokens}x{dim}"
            )


@register_link("factorized", codec_id=16, learned=True)
class FactorizedTokenCodec(TokenCodec):
    """Token codec with a factorised prior: one learned density per latent channel.

    Args: see ``TokenCodec``.
    """

    def __init__(
        self,
        dim: int,
        latent_dim: int = 16,
        num_tokens: int = 64,
        merge_tokens: int = 1,
        num_prefix_tokens: int = 0,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__(dim, latent_dim, num_tokens, merge_tokens, num_prefix_tokens, hidden_dim)
        self.entropy_bottleneck = EntropyBottleneck(latent_dim)

    def forward(self, tokens: torch.Tensor) -> dict[str, Any]:
        y_hat, y_lik = self.entropy_bottleneck(self.analysis(tokens))
        return {"y_hat": self.synthesis(y_hat), "likelihoods": {"y": y_lik}}

    def _encode(self, tokens: torch.Tensor) -> list[tuple[bytes, int]]:
        y = self.analysis(tokens.float())
        symbols = self.entropy_bottleneck.quantize(y, "symbols", self._medians())
        tables, indexes = CoderTables.of(self.entropy_bottleneck), self._channel_indexes()
        return [(body, 0) for body in encode_batch(symbols, indexes, tables)]

    def _decode(
        self, parsed: list[tuple[Header, bytes]], num_tokens: int, dim: int
    ) -> torch.Tensor:
        tables, indexes = CoderTables.of(self.entropy_bottleneck), self._channel_indexes()
        symbols = [
            StreamDecoder(body, indexes.numel(), f"factorized payload {i}").decode(indexes, tables)
            for i, (_, body) in enumerate(parsed)
        ]
        return self.synthesis(torch.stack(symbols).float() + self._medians())

    def _medians(self) -> torch.Tensor:
        return self.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1)

    def _channel_indexes(self) -> torch.Tensor:
        """Table index of every latent value of one sample: its channel."""
        device = self.entropy_bottleneck.quantiles.device
        channels = torch.arange(self.latent_dim, dtype=torch.int32, device=device)
        return channels[:, None].expand(-1, self.num_units)


@register_link("hyperprior", codec_id=17, learned=True)
class HyperpriorTokenCodec(TokenCodec):
    """Token codec with a scale hyperprior: a per-sample hyper-latent predicts every latent's scale.

    The body of a payload is one rANS stream: the hyper-latent ``z``, then the latents ``y``.

    Args:
        dim: See ``TokenCodec``.
        latent_dim: See ``TokenCodec``.
        num_tokens: See ``TokenCodec``.
        merge_tokens: See ``TokenCodec``.
        num_prefix_tokens: See ``TokenCodec``.
        hidden_dim: See ``TokenCodec``.
        hyper_dim: Channels of the hyper-latent ``z`` (one value each per sample).
        hyper_hidden_dim: Width of the hyper transforms' hidden layer.
    """

    def __init__(
        self,
        dim: int,
        latent_dim: int = 16,
        num_tokens: int = 64,
        merge_tokens: int = 1,
        num_prefix_tokens: int = 0,
        hidden_dim: int | None = None,
        hyper_dim: int = 8,
        hyper_hidden_dim: int = 64,
    ) -> None:
        super().__init__(dim, latent_dim, num_tokens, merge_tokens, num_prefix_tokens, hidden_dim)
        self.hyper_dim, self.hyper_hidden_dim = hyper_dim, hyper_hidden_dim
        flat = latent_dim * self.num_units
        self.h_a = _mlp(flat, hyper_hidden_dim, hyper_dim)
        self.h_s = _mlp(hyper_dim, hyper_hidden_dim, flat)
        self.entropy_bottleneck = EntropyBottleneck(hyper_dim)
        self.gaussian_conditional = GaussianConditional(scale_table())

    def config(self) -> dict[str, object]:
        return {
            **super().config(),
            "hyper_dim": self.hyper_dim,
            "hyper_hidden_dim": self.hyper_hidden_dim,
        }

    def _hyper_analysis(self, y: torch.Tensor) -> torch.Tensor:
        """``[B, C, U]`` latents -> ``[B, Z, 1]`` hyper-latent (from magnitudes, as Ballé does)."""
        return self.h_a(y.abs().flatten(1)).unsqueeze(-1)

    def _scales(self, z_hat: torch.Tensor) -> torch.Tensor:
        """``[B, Z, 1]`` -> positive scales ``[B, C, U]``."""
        return F.softplus(self.h_s(z_hat.flatten(1))).view(-1, self.latent_dim, self.num_units)

    def _scales_per_sample(self, z_hat: torch.Tensor) -> torch.Tensor:
        """Scales one sample at a time, so encoder and decoder run identical float ops.

        Batched matrix products may round differently for different batch sizes; a decoder that
        receives payloads in other groupings than they were encoded would then pick a different
        CDF for a value near a table boundary and decode garbage.
        """
        return torch.cat([self._scales(z_hat[i : i + 1]) for i in range(z_hat.shape[0])])

    def forward(self, tokens: torch.Tensor) -> dict[str, Any]:
        y = self.analysis(tokens)
        z_hat, z_lik = self.entropy_bottleneck(self._hyper_analysis(y))
        y_hat, y_lik = self.gaussian_conditional(y, self._scales(z_hat))
        return {"y_hat": self.synthesis(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}}

    def _encode(self, tokens: torch.Tensor) -> list[tuple[bytes, int]]:
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        y = self.analysis(tokens.float())
        z_med = self._z_medians()
        z_sym = eb.quantize(self._hyper_analysis(y), "symbols", z_med)
        y_idx = gc.build_indexes(self._scales_per_sample(z_sym.float() + z_med))
        y_sym = gc.quantize(y, "symbols")
        z_tables, y_tables, z_idx = CoderTables.of(eb), CoderTables.of(gc), self._z_indexes()
        return [
            (encode_stream([(z_sym[i], z_idx, z_tables), (y_sym[i], y_idx[i], y_tables)]), 0)
            for i in range(y.shape[0])
        ]

    def _decode(
        self, parsed: list[tuple[Header, bytes]], num_tokens: int, dim: int
    ) -> torch.Tensor:
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        z_tables, y_tables, z_idx = CoderTables.of(eb), CoderTables.of(gc), self._z_indexes()
        z_med, n_symbols = self._z_medians(), self.hyper_dim + self.latent_dim * self.num_units
        y_hats = []
        for i, (_, body) in enumerate(parsed):
            stream = StreamDecoder(body, n_symbols, f"hyperprior payload {i}")
            z_hat = stream.decode(z_idx, z_tables)[None].float() + z_med
            y_idx = gc.build_indexes(self._scales(z_hat))[0]
            y_hats.append(stream.decode(y_idx, y_tables).float())
        return self.synthesis(torch.stack(y_hats))

    def _z_medians(self) -> torch.Tensor:
        return self.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1)

    def _z_indexes(self) -> torch.Tensor:
        device = self.entropy_bottleneck.quantiles.device
        return torch.arange(self.hyper_dim, dtype=torch.int32, device=device)[:, None]
