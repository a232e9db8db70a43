"""A spiking link module: tokens cross the cut as binary spike trains.

A learned projection maps each token ``[D]`` to ``k`` currents; integrate-and-fire neurons turn
them into spikes over ``T`` steps (a rate code, ``T * k`` bits per token); the ground decodes the
firing rates with a linear layer. Training passes gradients through the surrogate, and
``forward`` returns exactly what ``decompress(compress(x))`` returns.

The payload body is the packed spike train ``[T, N, k]`` (``numpy.packbits``, time first),
deflated with zlib when that is shorter; the ``encoders.header`` header in front carries the
token shape, a CRC-32 of the body and a configuration tag that covers ``T``, ``k`` and a
checksum of the weights, so a ground decoder built differently refuses the payload.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch
from torch import nn

from encoders.base import LinkModule, register_link
from encoders.header import FLAG_ZLIB, Header, config_tag, inflate_body, state_crc32
from snn.neurons import initial_mem, make_lif, release_state

__all__ = ["SPIKE_CODEC_ID", "SpikeLink", "pack_spikes", "unpack_spikes"]

SPIKE_CODEC_ID = 128
"""Wire id of the spiking link (ids >= 128 belong to packages outside ``encoders``)."""


def pack_spikes(spikes: np.ndarray, zlib_level: int = 9) -> tuple[bytes, int]:
    """Pack one sample's spike train ``[T, N, k]`` (values in {0, 1}) into a payload body.

    Args:
        spikes: Binary array, time first.
        zlib_level: zlib level (0: never deflate); deflated only when shorter.

    Returns:
        ``(body, flags)``, with ``FLAG_ZLIB`` set when the body is deflated.
    """
    if spikes.ndim != 3:
        raise ValueError(f"expected spikes [T, N, k], got shape {spikes.shape}")
    if not np.isin(spikes, (0, 1)).all():
        raise ValueError("spike trains must be binary")
    bits = np.packbits(spikes.astype(np.uint8).reshape(-1)).tobytes()
    if zlib_level > 0:
        deflated = zlib.compress(bits, zlib_level)
        if len(deflated) < len(bits):
            return deflated, FLAG_ZLIB
    return bits, 0


def unpack_spikes(body: bytes, flags: int, steps: int, n_tokens: int, width: int) -> np.ndarray:
    """Rebuild ``[T, N, k]`` uint8 spikes from :func:`pack_spikes` output.

    Raises:
        ValueError: A body that does not inflate, has the wrong length or nonzero padding.
    """
    n_bits = steps * n_tokens * width
    body = inflate_body(body, flags, (n_bits + 7) // 8,
                        f"spike body (T={steps}, N={n_tokens}, k={width})")
    bits = np.unpackbits(np.frombuffer(body, dtype=np.uint8))
    if bits[n_bits:].any():
        raise ValueError("spike body has nonzero padding bits")
    return bits[:n_bits].reshape(steps, n_tokens, width)


@register_link("spike", codec_id=SPIKE_CODEC_ID, learned=True)
class SpikeLink(LinkModule):
    """Tokens ``[B, N, D]`` -> spikes ``[T, B, N, k]`` -> tokens, honouring the link contract.

    Args:
        dim: Token width ``D``.
        code_dim: Spiking channels per token ``k`` (bits per token per step).
        num_steps: Timesteps ``T``.
        beta: Membrane decay of the encoder neurons (1.0: integrate-and-fire).
        threshold: Firing threshold.
        surrogate: Surrogate-gradient name.
        mem_init: Initial membrane potential as a fraction of the threshold.
        zlib_level: zlib level for the payload (0: raw packed bits).
    """

    flag_mask = FLAG_ZLIB

    def __init__(
        self,
        dim: int,
        code_dim: int = 16,
        num_steps: int = 8,
        beta: float = 1.0,
        threshold: float = 1.0,
        surrogate: str = "fast_sigmoid",
        mem_init: float = 0.5,
        zlib_level: int = 9,
    ) -> None:
        super().__init__()
        if num_steps < 1 or code_dim < 1 or dim < 1:
            raise ValueError("dim, code_dim and num_steps must be >= 1")
        if num_steps * code_dim >= 32 * dim:
            raise ValueError(
                f"spike link T={num_steps} x k={code_dim} = {num_steps * code_dim} bits per token "
                f"is not below the identity payload's {32 * dim} (float32 x D={dim}); it would "
                "send more than the uncompressed tokens")
        if not 0 <= zlib_level <= 9:
            raise ValueError(f"zlib_level must be in 0..9, got {zlib_level}")
        self.dim = dim
        self.code_dim = code_dim
        self.num_steps = num_steps
        self.beta = beta
        self.threshold = threshold
        self.mem_init = mem_init
        self.zlib_level = zlib_level
        self.encoder = nn.Linear(dim, code_dim)
        self.lif = make_lif(beta=beta, threshold=threshold, surrogate=surrogate)
        self.decoder = nn.Linear(code_dim, dim)

    @classmethod
    def cut_kwargs(cls, dim: int, num_tokens: int, **options: Any) -> dict[str, Any]:
        """As ``LinkModule.cut_kwargs``; a task's ``latent_dim`` is this link's ``code_dim``."""
        if "latent_dim" in options:
            options.setdefault("code_dim", options["latent_dim"])
        return super().cut_kwargs(dim, num_tokens, **options)

    def config(self) -> dict[str, object]:
        return {
            "dim": self.dim,
            "code_dim": self.code_dim,
            "num_steps": self.num_steps,
            "beta": self.beta,
            "threshold": self.threshold,
            "mem_init": self.mem_init,
        }

    def wire_tag(self) -> int:
        """Configuration tag that also covers the current weights (encoder and decoder)."""
        return config_tag(self.config(), state_crc32(self))

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Spikes ``[T, B, N, k]`` in {0, 1}; differentiable through the surrogate."""
        cur = self.encoder(tokens)
        mem = initial_mem(self.lif, cur, self.mem_init)
        spikes = []
        try:
            for _ in range(self.num_steps):
                spk, mem = self.lif(cur, mem)
                spikes.append(spk)
        finally:
            release_state(self)
        return torch.stack(spikes)

    def decode(self, spikes: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, N, D]`` from spikes ``[T, B, N, k]`` (a linear read of the rates)."""
        return self.decoder(spikes.mean(0))

    def forward(self, tokens: torch.Tensor) -> dict[str, Any]:
        return {"y_hat": self.decode(self.encode(tokens)), "likelihoods": {}}

    def bits_per_token(self) -> int:
        """Uncompressed spike bits per token (``T * k``); zlib may send fewer."""
        return self.num_steps * self.code_dim

    def _check_shape(self, num_tokens: int, dim: int) -> None:
        if dim != self.dim:
            raise ValueError(f"spike link codes tokens of width {self.dim}, got {dim}")

    @torch.no_grad()
    def _encode(self, tokens: torch.Tensor) -> list[tuple[bytes, int]]:
        if not torch.isfinite(tokens).all():
            raise ValueError("spike: tokens contain NaN or inf")
        spikes = self.encode(tokens).to(torch.uint8).cpu().numpy()  # [T, B, N, k]
        return [pack_spikes(spikes[:, b], self.zlib_level) for b in range(spikes.shape[1])]

    @torch.no_grad()
    def _decode(
        self, parsed: list[tuple[Header, bytes]], num_tokens: int, dim: int
    ) -> torch.Tensor:
        trains = []
        for i, (head, body) in enumerate(parsed):
            try:
                trains.append(
                    unpack_spikes(body, head.flags, self.num_steps, num_tokens, self.code_dim)
                )
            except ValueError as err:
                raise ValueError(f"spike payload {i}: {err}") from err
        ref = self.decoder.weight
        spikes = torch.from_numpy(np.stack(trains, axis=1)).to(device=ref.device, dtype=ref.dtype)
        return self.decode(spikes).float()
