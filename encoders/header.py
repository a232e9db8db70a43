"""A small versioned header in front of every link payload, so a receiver can check what it got.

A payload crosses a lossy, intermittent space link and may be decoded by a different process (the
ground station) than the one that encoded it (the satellite). The range decoder of CompressAI does
not detect a damaged body: it silently returns garbage symbols. The header therefore carries what
the decoder must agree on (codec, configuration, token shape) and a CRC32 of the body; every check
that fails raises a ``ValueError`` saying what was expected.

Layout (big-endian, ``HEADER_SIZE`` = 19 bytes)::

    magic    2s  b"SE"
    version  B   FORMAT_VERSION
    codec    B   codec id (each link's ``register_link(..., codec_id=...)``; see ``CODEC_IDS``)
    flags    B   codec-specific bits (e.g. FLAG_ZLIB)
    tokens   H   N, tokens per sample
    width    H   D, token width
    config   H   16-bit tag of the configuration, and of the weights for learned codecs
    length   I   body length in bytes
    crc32    I   CRC32 of the header fields before it and of the body
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from encoders.registry import codec_ids, codec_name

__all__ = [
    "CODEC_IDS",
    "FLAG_ZLIB",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "Header",
    "config_tag",
    "pack_payload",
    "unpack_payload",
]

MAGIC = b"SE"
FORMAT_VERSION = 1
FLAG_ZLIB = 0x01
"""The body was deflated with zlib (set only when that made it smaller)."""

_STRUCT = struct.Struct(">2sBBBHHHII")
HEADER_SIZE = _STRUCT.size
_CRC_AT = HEADER_SIZE - 4

CODEC_IDS: Mapping[str, int] = codec_ids()
"""``{name: wire id}`` of every registered link, read from the registry (``encoders.registry``).

Each id is given once, by the link's ``@register_link(name, codec_id=...)``; never reuse or
renumber one (payloads may be stored on disk). ``tests/encoders/test_link_registry.py`` pins them.
"""


@dataclass(frozen=True)
class Header:
    """The decoded fixed-size header of one payload."""

    version: int
    codec_id: int
    flags: int
    num_tokens: int
    dim: int
    config: int
    length: int
    crc32: int


def config_tag(config: Mapping[str, object], weights: int | None = None) -> int:
    """16-bit tag of a codec configuration, so a decoder built differently refuses the payload.

    Args:
        config: Constructor arguments that change the bitstream (latent width, bit depth...).
        weights: For learned codecs, a checksum of the weights and entropy tables at the last
            ``update()``: a decoder whose tables differ (another checkpoint, tables rebuilt on
            another device with different rounding) would otherwise decode garbage silently.
    """
    text = ";".join(f"{k}={config[k]!r}" for k in sorted(config))
    if weights is not None:
        text += f";weights={weights:08x}"
    return zlib.crc32(text.encode()) & 0xFFFF


def pack_payload(
    codec_id: int, config: int, num_tokens: int, dim: int, body: bytes, flags: int = 0
) -> bytes:
    """Prefix ``body`` with the header; shapes must fit the 16-bit fields."""
    if not (0 < num_tokens <= 0xFFFF and 0 < dim <= 0xFFFF):
        raise ValueError(f"token shape {num_tokens}x{dim} does not fit the header (max 65535)")
    fields = _STRUCT.pack(
        MAGIC, FORMAT_VERSION, codec_id, flags, num_tokens, dim, config, len(body), 0
    )[:_CRC_AT]
    return fields + struct.pack(">I", zlib.crc32(body, zlib.crc32(fields))) + body


def unpack_payload(
    payload: bytes,
    codec_id: int,
    config: int,
    num_tokens: int,
    dim: int,
    index: int = 0,
    flag_mask: int = 0xFF,
) -> tuple[Header, bytes]:
    """Check a payload against what the decoder expects and return its header and body.

    Args:
        payload: One sample's bytes as produced by ``pack_payload``.
        codec_id: The decoder's codec id.
        config: The decoder's configuration tag.
        num_tokens: Expected tokens per sample.
        dim: Expected token width.
        index: Position of the payload in its batch, only for error messages.
        flag_mask: Flag bits the decoder understands; any other set bit is refused.

    Raises:
        ValueError: On a short, foreign, damaged or mismatched payload; the message names what was
            expected and what was found.
    """
    where = f"payload {index}"
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ValueError(f"{where}: expected bytes, got {type(payload).__name__}")
    payload = bytes(payload)
    if len(payload) < HEADER_SIZE:
        raise ValueError(
            f"{where}: truncated, {len(payload)} bytes is shorter than the {HEADER_SIZE}-byte header"
        )
    magic, version, cid, flags, n, d, tag, length, crc = _STRUCT.unpack_from(payload)
    if magic != MAGIC:
        raise ValueError(
            f"{where}: bad magic {magic!r}, expected {MAGIC!r} (not a satedge payload)"
        )
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{where}: format version {version}, expected {FORMAT_VERSION} (encoder and decoder "
            "come from different satedge versions)"
        )
    if cid != codec_id:
        raise ValueError(
            f"{where}: encoded by codec {codec_name(cid)!r}, expected {codec_name(codec_id)!r}"
        )
    if (n, d) != (num_tokens, dim):
        raise ValueError(f"{where}: token shape {n}x{d}, expected {num_tokens}x{dim}")
    if tag != config:
        raise ValueError(
            f"{where}: configuration tag {tag:#06x}, expected {config:#06x} (same codec, different "
            "constructor arguments, or for learned codecs different weights or entropy tables "
            "at the last update())"
        )
    body = payload[HEADER_SIZE:]
    if len(body) < length:
        raise ValueError(f"{where}: truncated, body has {len(body)} of {length} bytes")
    if len(body) > length:
        raise ValueError(
            f"{where}: {len(body) - length} trailing bytes after the {length}-byte body"
        )
    if zlib.crc32(body, zlib.crc32(payload[:_CRC_AT])) != crc:
        raise ValueError(f"{where}: CRC32 mismatch, the payload is corrupted")
    if flags & ~flag_mask:
        raise ValueError(f"{where}: unknown flags {flags & ~flag_mask:#04x} for this codec")
    return Header(version, cid, flags, n, d, tag, length, crc), body


def state_crc32(module: nn.Module) -> int:
    """CRC32 of every parameter and buffer (names and raw bytes), e.g. to tell checkpoints apart."""
    crc = 0
    for name, tensor in sorted(module.state_dict().items()):
        crc = zlib.crc32(name.encode(), crc)
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        crc = zlib.crc32(raw.tobytes(), crc)
    return crc


def deflate_body(body: bytes, level: int) -> tuple[bytes, int]:
    """zlib the body when that makes it smaller; the flag tells the decoder which one it got."""
    if level > 0:
        packed = zlib.compress(body, level)
        if len(packed) < len(body):
            return packed, FLAG_ZLIB
    return body, 0


def inflate_body(body: bytes, flags: int, expected: int, what: str) -> bytes:
    """The body as the coder wrote it, exactly ``expected`` bytes (``ValueError`` naming
    ``what`` otherwise: a stream that does not inflate, is cut short or inflates to more)."""
    if flags & FLAG_ZLIB:
        # Inflate at most one byte past what the tokens need: a small deflate bomb must not make
        # the decoder allocate gigabytes before the length check refuses it.
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(body, expected + 1)
        except zlib.error as err:
            raise ValueError(f"{what}: zlib body does not inflate ({err})") from err
        if len(raw) > expected or inflater.unconsumed_tail:
            raise ValueError(f"{what}: zlib body inflates to more than the {expected} bytes "
                             "expected")
        if not inflater.eof:
            raise ValueError(f"{what}: zlib body does not inflate (incomplete or truncated "
                             "stream)")
        body = raw
    if len(body) != expected:
        raise ValueError(f"{what}: body has {len(body)} bytes after inflating, expected {expected}")
    return body
