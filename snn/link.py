"""A spiking link module: tokens cross the cut as binary spike trains.

A learned projection maps each token ``[D]`` (or each ``m x m`` window of neighbouring tokens,
``merge_tokens``) to ``k`` currents; integrate-and-fire neurons turn them into spikes over ``T``
steps (a rate code, ``T * k`` bits per unit); the ground decodes the firing rates with a linear
layer (or an MLP). Merging lets one unit's ``k`` spikes describe correlated neighbours together,
as the learned ANN codecs' merged units do, instead of coding each token on its own. With
``encoder_hidden`` the on-board encoder is two layers with a population of ``h`` spiking neurons
between them: the projection drives the hidden neurons, and their binary spikes drive the ``k``
output neurons through a second layer that only adds (``k`` additions per hidden spike), so the
encoder is nonlinear, as the learned ANN codecs' analysis transforms are. Training
passes gradients through the surrogate, and ``forward`` returns exactly what
``decompress(compress(x))`` returns.

The payload body is the packed spike train ``[T, U, k]`` (``U`` units: the ``N`` tokens or their
merged windows; ``numpy.packbits``, time first), deflated with zlib when that is shorter. With
``prior=True`` the link also holds a static Bernoulli entropy model, one firing probability per
(step, unit position, channel) estimated from the spikes seen in training, and range-codes the
train with it (CompressAI's rANS, through ``encoders.rans``) whenever that is shorter still: a
spike train is far from uniform (some channels almost never fire, some positions almost always
do), and packed bits pay one bit per slot whatever its probability. The same model gives
``forward`` likelihoods, so ``lmbda`` in a rate-distortion loss trains the encoder towards cheap
spike trains, as for the learned codecs.

The ``encoders.header`` header in front carries the token shape, a CRC-32 of the body, flags
saying which body it is, and a configuration tag that covers ``T``, ``k``, the prior and a
checksum of the weights and of the firing statistics, so a ground decoder built differently
refuses the payload.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch
from compressai._CXX import pmf_to_quantized_cdf  # what CompressAI's entropy models build with
from torch import nn

from encoders.base import LinkModule, register_link
from encoders.checks import all_finite
from encoders.header import FLAG_ZLIB, Header, config_tag, inflate_body, state_crc32
from encoders.rans import CoderTables, StreamDecoder, encode_batch
from encoders.tokens import TokenLayout
from snn.neurons import initial_mem, make_lif, release_state

__all__ = ["FLAG_RANS", "SPIKE_CODEC_ID", "SpikeLink", "pack_spikes", "unpack_spikes"]

SPIKE_CODEC_ID = 128
"""Wire id of the spiking link (ids >= 128 belong to packages outside ``encoders``)."""

FLAG_RANS = 0x02
"""The body is the spike train range-coded under the link's Bernoulli prior (not packed bits)."""

PRIOR_PRECISION = 16
"""Bits of the coder's integer CDFs: the rarest symbol costs at most this many bits."""


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


def _krichevsky_trofimov(ones: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Firing probability ``(ones + 1/2) / (seen + 1)`` from spike counts: never 0 or 1, so a
    spike the prior did not expect costs bits, not an error."""
    return (ones + 0.5) / (seen + 1.0)


@register_link("spike", codec_id=SPIKE_CODEC_ID, learned=True)
class SpikeLink(LinkModule):
    """Tokens ``[B, N, D]`` -> spikes ``[T, B, N, k]`` -> tokens, honouring the link contract.

    Args:
        dim: Token width ``D``.
        code_dim: Spiking channels per unit ``k`` (bits per unit per step; a unit is a token, or
            a merged window of them).
        num_steps: Timesteps ``T``.
        beta: Membrane decay of the encoder neurons (1.0: integrate-and-fire).
        threshold: Firing threshold.
        surrogate: Surrogate-gradient name.
        mem_init: Initial membrane potential as a fraction of the threshold.
        zlib_level: zlib level for the payload (0: raw packed bits).
        num_tokens: Tokens per sample ``N`` at the cut; the prior and merging need it (one
            probability per unit position).
        prior: Hold a Bernoulli prior over the spike slots, give ``forward`` likelihoods from
            it and range-code payloads with it when that is shorter.
        prior_momentum: Weight of each training batch in the prior's running spike counts (as
            BatchNorm's running statistics); :meth:`fit_prior` replaces them with exact counts.
        decoder_hidden: Width of a one-hidden-layer MLP ground decoder reading each token's whole
            train (``T * k`` spikes); ``None``: a linear read of the firing rates. The decoder
            runs on the ground, so its size costs no on-board energy or bytes.
        merge_tokens: Side ``m`` of the square window of grid tokens one unit codes (1: every
            token on its own). The encoder reads ``m * m * D`` values per unit, so its on-board
            MACs per sample stay ``N * D * k`` for the same ``k``; the bits drop ``m * m`` times.
        encoder_hidden: Width ``h`` of a hidden layer of spiking neurons in the on-board encoder
            (``None``: one linear projection). Its input layer costs ``N * D * h`` MACs a sample
            (``h / k`` times the single projection's), its output layer additions only.
    """

    flag_mask = FLAG_ZLIB | FLAG_RANS

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
        num_tokens: int | None = None,
        prior: bool = False,
        prior_momentum: float = 0.01,
        decoder_hidden: int | None = None,
        merge_tokens: int = 1,
        encoder_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if num_steps < 1 or code_dim < 1 or dim < 1:
            raise ValueError("dim, code_dim and num_steps must be >= 1")
        if prior and (num_tokens is None or num_tokens < 1):
            raise ValueError(f"prior=True needs num_tokens >= 1 (one firing probability per "
                             f"token position), got num_tokens={num_tokens}")
        if merge_tokens != 1 and num_tokens is None:
            raise ValueError(f"merge_tokens={merge_tokens} needs num_tokens (the token grid it "
                             "merges)")
        self.layout = TokenLayout(num_tokens, dim, merge_tokens) if merge_tokens != 1 else None
        unit_dim = self.layout.unit_dim if self.layout else dim
        if decoder_hidden is not None and decoder_hidden < 1:
            raise ValueError(f"decoder_hidden must be >= 1 (or None), got {decoder_hidden}")
        if encoder_hidden is not None and (isinstance(encoder_hidden, bool)
                                           or not isinstance(encoder_hidden, int)
                                           or encoder_hidden < 1):
            raise ValueError(f"encoder_hidden must be an integer >= 1 (or None), got "
                             f"{encoder_hidden!r}")
        if not 0 < prior_momentum <= 1:
            raise ValueError(f"prior_momentum must be in (0, 1], got {prior_momentum}")
        if num_steps * code_dim >= 32 * unit_dim:
            raise ValueError(
                f"spike link T={num_steps} x k={code_dim} = {num_steps * code_dim} bits per unit "
                f"is not below the identity payload's {32 * unit_dim} (float32 x "
                f"{unit_dim // dim} token(s) x D={dim}); it would send more than the "
                "uncompressed tokens")
        if not 0 <= zlib_level <= 9:
            raise ValueError(f"zlib_level must be in 0..9, got {zlib_level}")
        self.dim = dim
        self.code_dim = code_dim
        self.num_steps = num_steps
        self.beta = beta
        self.threshold = threshold
        self.mem_init = mem_init
        self.zlib_level = zlib_level
        self.num_tokens = num_tokens
        self.prior = prior
        self.prior_momentum = prior_momentum
        self.merge_tokens = merge_tokens
        self.num_units = self.layout.num_units if self.layout else num_tokens
        self.encoder_hidden = encoder_hidden
        self.encoder = nn.Linear(unit_dim, encoder_hidden or code_dim)
        if encoder_hidden is not None:  # hidden spikes -> k currents (additions only)
            self.encoder_lif = make_lif(beta=beta, threshold=threshold, surrogate=surrogate)
            self.encoder_out = nn.Linear(encoder_hidden, code_dim)
        self.lif = make_lif(beta=beta, threshold=threshold, surrogate=surrogate)
        self.decoder_hidden = decoder_hidden
        self.decoder = nn.Linear(code_dim, unit_dim) if decoder_hidden is None else nn.Sequential(
            nn.Linear(num_steps * code_dim, decoder_hidden), nn.GELU(),
            nn.Linear(decoder_hidden, unit_dim))
        if prior:  # running spike counts per slot, and how many trains they count
            self.register_buffer("prior_ones", torch.zeros(num_steps, self.num_units, code_dim))
            self.register_buffer("prior_seen", torch.zeros(()))
        self._tables: tuple[int, CoderTables] | None = None

    @classmethod
    def cut_kwargs(cls, dim: int, num_tokens: int, **options: Any) -> dict[str, Any]:
        """As ``LinkModule.cut_kwargs``; a task's ``latent_dim`` is this link's ``code_dim`` and its
        ``hidden_dim`` the width of the ground decoder (``decoder_hidden``)."""
        if "latent_dim" in options:
            options.setdefault("code_dim", options["latent_dim"])
        if options.get("hidden_dim"):
            options.setdefault("decoder_hidden", options["hidden_dim"])
        return super().cut_kwargs(dim, num_tokens, **options)

    def config(self) -> dict[str, object]:
        return {
            "dim": self.dim,
            "code_dim": self.code_dim,
            "num_steps": self.num_steps,
            "beta": self.beta,
            "threshold": self.threshold,
            "mem_init": self.mem_init,
            **({"prior": True, "num_tokens": self.num_tokens, "prior_precision": PRIOR_PRECISION}
               if self.prior else {}),
            **({"decoder_hidden": self.decoder_hidden} if self.decoder_hidden else {}),
            **({"encoder_hidden": self.encoder_hidden} if self.encoder_hidden else {}),
            **({"merge_tokens": self.merge_tokens, "num_tokens": self.num_tokens}
               if self.layout else {}),
        }

    def wire_tag(self) -> int:
        """Configuration tag that also covers the current weights (encoder and decoder) and, with
        a prior, the integer tables the coder uses (built by CompressAI's code, whose version
        the satellite and the ground may not share)."""
        weights = state_crc32(self)
        if self.prior:
            weights = zlib.crc32(repr(self.coder_tables().cdfs).encode(), weights)
        return config_tag(self.config(), weights)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Spikes ``[T, B, U, k]`` in {0, 1}; differentiable through the surrogate."""
        cur = self.encoder(self.layout.split(tokens)[1] if self.layout else tokens)
        hidden = self.encoder_hidden is not None
        hidden_mem = initial_mem(self.encoder_lif, cur, self.mem_init) if hidden else None
        mem = initial_mem(self.lif, cur.new_empty(*cur.shape[:-1], self.code_dim), self.mem_init)
        spikes = []
        try:
            for _ in range(self.num_steps):
                drive = cur
                if hidden:  # this step's hidden spikes drive the output neurons
                    hidden_spikes, hidden_mem = self.encoder_lif(cur, hidden_mem)
                    drive = self.encoder_out(hidden_spikes)
                spk, mem = self.lif(drive, mem)
                spikes.append(spk)
        finally:
            release_state(self)
        return torch.stack(spikes)

    def decode(self, spikes: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, N, D]`` from spikes ``[T, B, U, k]`` (a linear read of the rates, or the
        MLP on each unit's train)."""
        if self.decoder_hidden is None:
            units = self.decoder(spikes.mean(0))
        else:
            units = self.decoder(spikes.movedim(0, -2).flatten(-2))  # [B, U, T * k], step-major
        if self.layout is None:
            return units
        no_prefix = units.new_zeros(units.shape[0], 0, self.dim)  # merged links code the grid only
        return self.layout.join(no_prefix, units)

    def forward(self, tokens: torch.Tensor) -> dict[str, Any]:
        """Decoded tokens and, with a prior, the likelihood of every spike slot ``[B, T, U, k]``.

        The batch is scored under the counts before it (so its bits are not estimated from
        itself), then, in training, counted into them (no gradient). The likelihoods pass the
        gradient to the encoder through the spikes only.
        """
        spikes = self.encode(tokens)
        likelihoods = {}
        if self.prior:
            self._check_positions(tokens.shape[1])
            p = self.firing_probability().to(spikes)[:, None]  # [T, 1, N, k]
            likelihoods["spikes"] = (spikes * p + (1 - spikes) * (1 - p)).movedim(1, 0)
            if self.training:
                self.observe(spikes.detach(), decay=1.0 - self.prior_momentum)
        return {"y_hat": self.decode(spikes), "likelihoods": likelihoods}

    def bits_per_token(self) -> float:
        """Uncompressed spike bits per token (``T * k`` over the tokens a unit merges); zlib or
        the prior may send fewer."""
        return self.num_steps * self.code_dim / self.merge_tokens ** 2

    # ----------------------------------------------------------------- the Bernoulli prior
    @torch.no_grad()
    def observe(self, spikes: torch.Tensor, decay: float = 1.0) -> None:
        """Count spike trains ``[T, B, N, k]`` into the prior, after scaling the old counts by
        ``decay`` (1: an exact running count, as :meth:`fit_prior` uses)."""
        if not self.prior:
            raise ValueError("observe: this spike link has no prior (build it with prior=True)")
        if spikes.dim() != 4 or spikes.shape[0] != self.num_steps or spikes.shape[2:] != (
                self.num_units, self.code_dim):
            raise ValueError(f"observe: expected spikes [T={self.num_steps}, B, U={self.num_units}, "
                             f"k={self.code_dim}], got {tuple(spikes.shape)}")
        self.prior_ones.mul_(decay).add_(spikes.sum(1).to(self.prior_ones))
        self.prior_seen.mul_(decay).add_(spikes.shape[1])

    @torch.no_grad()
    def fit_prior(self, token_batches: Any) -> int:
        """Replace the prior with exact spike counts over ``token_batches`` (tokens ``[B, N, D]``
        at the cut, e.g. the training set's); returns how many samples it counted."""
        if not self.prior:
            raise ValueError("fit_prior: this spike link has no prior (build it with prior=True)")
        self.prior_ones.zero_()
        self.prior_seen.zero_()
        for tokens in token_batches:
            self._check_positions(tokens.shape[1])
            self.observe(self.encode(tokens.to(self.encoder.weight)))
        return int(self.prior_seen)

    def firing_probability(self) -> torch.Tensor:
        """``[T, U, k]`` probability that each slot fires (float32, for the likelihoods)."""
        return _krichevsky_trofimov(self.prior_ones, self.prior_seen).float()

    def _check_positions(self, num_tokens: int) -> None:
        if num_tokens != self.num_tokens:
            raise ValueError(f"spike link prior models {self.num_tokens} token positions, got "
                             f"tokens with {num_tokens}")

    def coder_tables(self) -> CoderTables:
        """One integer CDF per slot (symbols 0 and 1, plus CompressAI's escape symbol), rebuilt
        whenever the counts change, in float64 on the CPU, so a satellite and a ground station
        holding the same checkpoint hold the same tables whatever device they run on."""
        ones, seen = self.prior_ones.detach().cpu(), self.prior_seen.detach().cpu()
        key = zlib.crc32(ones.numpy().tobytes(), zlib.crc32(seen.numpy().tobytes()))
        if self._tables is None or self._tables[0] != key:
            p1 = _krichevsky_trofimov(ones.double(), seen.double()).reshape(-1)
            tail = 2.0 ** -PRIOR_PRECISION
            pmfs = torch.stack([(1 - p1) * (1 - tail), p1 * (1 - tail),
                                torch.full_like(p1, tail)], dim=1).tolist()
            cdfs = [pmf_to_quantized_cdf(pmf, PRIOR_PRECISION) for pmf in pmfs]
            self._tables = (key, CoderTables(cdfs, [4] * len(cdfs), [0] * len(cdfs)))
        return self._tables[1]

    def _check_shape(self, num_tokens: int, dim: int) -> None:
        if dim != self.dim:
            raise ValueError(f"spike link codes tokens of width {self.dim}, got {dim}")
        if self.layout is not None and num_tokens != self.num_tokens:
            raise ValueError(f"spike link merges a grid of {self.num_tokens} tokens, got "
                             f"{num_tokens}")

    def _units(self, num_tokens: int) -> int:
        """Coded units of a sample of ``num_tokens`` tokens."""
        return self.num_units if self.layout is not None else num_tokens

    @torch.no_grad()
    def _encode(self, tokens: torch.Tensor) -> list[tuple[bytes, int]]:
        if not all_finite(tokens):
            raise ValueError("spike: tokens contain NaN or inf")
        spikes = self.encode(tokens).to(torch.uint8).cpu()  # [T, B, U, k]
        bodies = [pack_spikes(spikes[:, b].numpy(), self.zlib_level) for b in range(spikes.shape[1])]
        if not self.prior:
            return bodies
        self._check_positions(tokens.shape[1])
        tables, slots = self.coder_tables(), torch.arange(spikes[:, 0].numel())
        coded = encode_batch(spikes.transpose(0, 1), slots.reshape(spikes[:, 0].shape), tables)
        return [(body, FLAG_RANS) if len(body) < len(packed[0]) else packed
                for body, packed in zip(coded, bodies, strict=True)]

    @torch.no_grad()
    def _decode(
        self, parsed: list[tuple[Header, bytes]], num_tokens: int, dim: int
    ) -> torch.Tensor:
        trains = []
        tables = self.coder_tables() if self.prior else None
        for i, (head, body) in enumerate(parsed):
            try:
                trains.append(self._unpack(head.flags, body, num_tokens, tables))
            except ValueError as err:
                raise ValueError(f"spike payload {i}: {err}") from err
        ref = self.encoder.weight
        spikes = torch.from_numpy(np.stack(trains, axis=1)).to(device=ref.device, dtype=ref.dtype)
        return self.decode(spikes).float()

    def _unpack(self, flags: int, body: bytes, num_tokens: int,
                tables: CoderTables | None) -> np.ndarray:
        """One sample's ``[T, U, k]`` spikes from a packed, deflated or range-coded body."""
        units = self._units(num_tokens)
        if not flags & FLAG_RANS:
            return unpack_spikes(body, flags, self.num_steps, units, self.code_dim)
        if flags & FLAG_ZLIB:
            raise ValueError("flags say both range-coded and deflated; this link writes one")
        if tables is None:
            raise ValueError("body is range-coded but this spike link has no prior")
        self._check_positions(num_tokens)
        slots = torch.arange(self.num_steps * units * self.code_dim)
        spikes = StreamDecoder(body, len(slots), "spike body").decode(slots, tables)
        if not ((spikes == 0) | (spikes == 1)).all():  # the coder's escape path returns any int
            raise ValueError("range-coded spike body decodes to symbols other than 0 and 1")
        return spikes.reshape(self.num_steps, units, self.code_dim).numpy().astype(np.uint8)
