"""Plain baselines at a cut: float16 and uniform 8-/4-bit quantisation, with zlib behind them.

They answer "how far does naive compression go?" next to the learned codecs, under the same
contract and with real bytes: ``forward`` returns exactly what ``decompress(compress(x))`` returns
(the quantiser is shared), with a straight-through gradient so the satellite part can still train.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from encoders.base import LinkModule, register_link
from encoders.checks import all_finite
from encoders.header import FLAG_ZLIB, Header, deflate_body, inflate_body
from encoders.registry import link_spec

__all__ = ["Float16Link", "UniformQuantLink", "Int8Link", "Int4Link", "straight_through"]

FLAG_WIDE_PARAMS = 0x02
"""Uniform links: scale/offset are float32 because the tokens exceed the float16 range."""

_F16_MAX = 65504.0
_F16_TINY = 2.0**-24  # smallest positive float16 (subnormal)


def straight_through(tokens: torch.Tensor, coded: torch.Tensor) -> torch.Tensor:
    """Values of ``coded`` exactly, gradient of the identity w.r.t. ``tokens``."""
    return coded.detach() + (tokens - tokens.detach())




class _ZlibLink(LinkModule):
    """Shared plumbing of the baselines: zlib level and a per-sample encode/decode loop."""

    flag_mask = FLAG_ZLIB

    def __init__(self, zlib_level: int = 9) -> None:
        super().__init__()
        if not 0 <= zlib_level <= 9:
            raise ValueError(f"zlib_level must be in 0..9, got {zlib_level}")
        self.zlib_level = zlib_level

    def _decode(
        self, parsed: list[tuple[Header, bytes]], num_tokens: int, dim: int
    ) -> torch.Tensor:
        samples = [
            self._decode_one(head.flags, body, num_tokens, dim, f"{self.link_name} payload {i}")
            for i, (head, body) in enumerate(parsed)
        ]
        return torch.stack(samples).to(self._device())

    def _decode_one(
        self, flags: int, body: bytes, num_tokens: int, dim: int, what: str
    ) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@register_link("float16", codec_id=1)
class Float16Link(_ZlibLink):
    """Half-precision tokens (saturated at +-65504 rather than overflowing to inf).

    Args:
        zlib_level: zlib level of the lossless back end (0 stores the raw half floats).
    """

    def forward(self, tokens: torch.Tensor) -> dict[str, Any]:
        return {"y_hat": straight_through(tokens, self._round(tokens)), "likelihoods": {}}

    @staticmethod
    def _round(tokens: torch.Tensor) -> torch.Tensor:
        return tokens.clamp(-_F16_MAX, _F16_MAX).to(torch.float16).to(tokens.dtype)

    def _encode(self, tokens: torch.Tensor) -> list[tuple[bytes, int]]:
        half = tokens.float().clamp(-_F16_MAX, _F16_MAX).to(torch.float16).cpu().numpy()
        return [deflate_body(s.astype("<f2").tobytes(), self.zlib_level) for s in half]

    def _decode_one(self, flags: int, body: bytes, num_tokens: int, dim: int, what: str):
        raw = inflate_body(body, flags, 2 * num_tokens * dim, what)
        values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        return torch.from_numpy(values).view(num_tokens, dim)


def _fp16_floor(x: torch.Tensor) -> torch.Tensor:
    """Largest float16 value <= x, as float32 (so a rounded offset never cuts off the minimum)."""
    h = x.to(torch.float16)
    h = torch.where(h.float() > x, torch.nextafter(h, torch.full_like(h, -float("inf"))), h)
    return h.float()


def _fp16_ceil(x: torch.Tensor) -> torch.Tensor:
    """Smallest float16 value >= x, as float32 (so a rounded step still reaches the maximum)."""
    h = x.to(torch.float16)
    h = torch.where(h.float() < x, torch.nextafter(h, torch.full_like(h, float("inf"))), h)
    return h.float()


class UniformQuantLink(_ZlibLink):
    """Uniform ``bits``-bit quantisation with a min/max offset and step per token or per sample.

    Offset and step travel in the payload as float16 (rounded outwards so the range still covers
    every value; float32 when the tokens exceed the float16 range), the codes are bit-packed, and
    zlib squeezes what is left. The error is at most half a step per value.

    Args:
        bits: 8 or 4 bits per value.
        granularity: ``"token"`` (one offset/step per token: more accurate, 4 bytes per token of
            side information) or ``"sample"`` (one pair per sample).
        zlib_level: zlib level of the lossless back end (0 disables it).
    """

    flag_mask = FLAG_ZLIB | FLAG_WIDE_PARAMS

    def __init__(
        self,
        bits: int = 8,
        granularity: Literal["token", "sample"] = "token",
        zlib_level: int = 9,
    ) -> None:
        super().__init__(zlib_level)
        if bits not in (4, 8):
            raise ValueError(f"bits must be 8 or 4, got {bits}")
        if granularity not in ("token", "sample"):
            raise ValueError(f"granularity must be 'token' or 'sample', got {granularity!r}")
        self.bits = bits
        self.granularity = granularity
        if type(self).codec_id < 0:  # used directly rather than through Int8Link / Int4Link
            spec = link_spec(f"int{bits}")
            self.link_name, self.codec_id = spec.name, spec.codec_id

    def config(self) -> dict[str, object]:
        return {"bits": self.bits, "granularity": self.granularity}

    @property
    def levels(self) -> int:
        """Highest code value (2**bits - 1)."""
        return (1 << self.bits) - 1

    # ----------------------------------------------------------------- the quantiser
    def _params(self, x: torch.Tensor, wide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Offset and step per group, already rounded to what the payload carries."""
        dims = (-1,) if self.granularity == "token" else (-2, -1)
        lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
        wide = wide.view(-1, *([1] * (x.dim() - 1)))
        lo = torch.where(wide, lo, _fp16_floor(lo))
        step = ((hi - lo) / self.levels).clamp_min(_F16_TINY)
        step = torch.where(wide, step, _fp16_ceil(step))
        return lo, step

    def _quantise(self, tokens: torch.Tensor):
        """Return codes, offset, step and the per-sample wide flag (float32 math throughout)."""
        x = tokens.detach().float()
        wide = x.abs().flatten(1).amax(dim=1) > 0.5 * _F16_MAX
        lo, step = self._params(x, wide)
        codes = torch.round((x - lo) / step).clamp_(0, self.levels)
        return codes, lo, step, wide

    def forward(self, tokens: torch.Tensor) -> dict[str, Any]:
        codes, lo, step, _ = self._quantise(tokens)
        y = (lo + codes * step).to(tokens.dtype)
        return {"y_hat": straight_through(tokens, y), "likelihoods": {}}

    # ----------------------------------------------------------------- bytes
    def _encode(self, tokens: torch.Tensor) -> list[tuple[bytes, int]]:
        if not all_finite(tokens):
            raise ValueError(f"{self.link_name}: tokens contain NaN or inf")
        codes, lo, step, wide = self._quantise(tokens)
        if not all_finite(lo + codes * step):  # what the decoder will compute
            raise ValueError(f"{self.link_name}: tokens spanning {tokens.min().item():.3g} to "
                             f"{tokens.max().item():.3g} overflow float32 when quantised to "
                             f"{self.bits} bits (the payload would decode to inf)")
        codes = codes.to(torch.uint8).cpu().numpy()
        lo, step, wide = lo.cpu().numpy(), step.cpu().numpy(), wide.cpu().numpy()
        out = []
        for i in range(codes.shape[0]):
            ptype = "<f4" if wide[i] else "<f2"
            side = np.concatenate([lo[i].ravel(), step[i].ravel()]).astype(ptype).tobytes()
            body = side + _pack_codes(codes[i].ravel(), self.bits)
            packed, flags = deflate_body(body, self.zlib_level)
            out.append((packed, flags | (FLAG_WIDE_PARAMS if wide[i] else 0)))
        return out

    def _decode_one(self, flags: int, body: bytes, num_tokens: int, dim: int, what: str):
        groups = num_tokens if self.granularity == "token" else 1
        psize = 4 if flags & FLAG_WIDE_PARAMS else 2
        n_code_bytes = (num_tokens * dim * self.bits + 7) // 8
        raw = inflate_body(body, flags, 2 * groups * psize + n_code_bytes, what)
        side = np.frombuffer(raw[: 2 * groups * psize], dtype="<f4" if psize == 4 else "<f2")
        side = torch.from_numpy(side.astype(np.float32))
        lo, step = side[:groups, None], side[groups:, None]
        codes = _unpack_codes(raw[2 * groups * psize :], self.bits, num_tokens * dim)
        codes = torch.from_numpy(codes.astype(np.float32)).view(num_tokens, dim)
        return lo + codes * step


def _pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Pack uint8 codes at ``bits`` (8 or 4) per value, high nibble first."""
    if bits == 8:
        return codes.tobytes()
    if codes.size % 2:
        codes = np.append(codes, np.uint8(0))
    return ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8).tobytes()


def _unpack_codes(data: bytes, bits: int, count: int) -> np.ndarray:
    raw = np.frombuffer(data, dtype=np.uint8)
    if bits == 8:
        return raw[:count]
    return np.stack([raw >> 4, raw & 0x0F], axis=1).ravel()[:count]


@register_link("int8", codec_id=2)
class Int8Link(UniformQuantLink):
    """Uniform 8-bit quantisation (see ``UniformQuantLink``)."""

    def __init__(
        self, granularity: Literal["token", "sample"] = "token", zlib_level: int = 9
    ) -> None:
        super().__init__(bits=8, granularity=granularity, zlib_level=zlib_level)


@register_link("int4", codec_id=3)
class Int4Link(UniformQuantLink):
    """Uniform 4-bit quantisation (see ``UniformQuantLink``)."""

    def __init__(
        self, granularity: Literal["token", "sample"] = "token", zlib_level: int = 9
    ) -> None:
        super().__init__(bits=4, granularity=granularity, zlib_level=zlib_level)
