"""One rANS stream per sample, shared by several CompressAI entropy models.

CompressAI codes each entropy model into its own string; every string pays the coder's 8-byte
state flush plus word padding, and a hyperprior payload would also need a length field to split
its two strings. At the rates of a token codec (tens to hundreds of bytes per sample) that is a
visible overhead, so the codecs here push all their symbols through one ``BufferedRansEncoder``
and read them back in the same order from one ``RansDecoder`` stream.

The decoder pads the stream with zeros: CompressAI's range decoder reads without bounds checks,
and a damaged stream that got past the header's CRC must not make it read outside the buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyModel

from encoders.checks import all_finite

__all__ = ["CoderTables", "StreamDecoder", "encode_batch", "encode_stream", "MIN_STREAM_BYTES"]

MIN_STREAM_BYTES = 8
"""The coder flushes its 64-bit state, so no valid stream is shorter."""


@dataclass(frozen=True)
class CoderTables:
    """The integer tables of one entropy model, as lists for the C++ coder."""

    cdfs: list[list[int]]
    lengths: list[int]
    offsets: list[int]

    @classmethod
    def of(cls, model: EntropyModel) -> CoderTables:
        """Tables of an updated ``EntropyBottleneck`` or ``GaussianConditional``."""
        return cls(
            model._quantized_cdf.tolist(),
            model._cdf_length.reshape(-1).int().tolist(),
            model._offset.reshape(-1).int().tolist(),
        )


def encode_stream(parts: list[tuple[torch.Tensor, torch.Tensor, CoderTables]]) -> bytes:
    """Code ``(symbols, indexes, tables)`` parts, in order, into one stream.

    Args:
        parts: Integer symbols and their table indexes (same shape) with the tables they index.
    """
    encoder = BufferedRansEncoder()
    for symbols, indexes, tables in parts:
        _check_counts(symbols.numel(), indexes)
        _check_symbols(symbols)
        encoder.encode_with_indexes(
            symbols.reshape(-1).int().tolist(), *_used_rows(indexes, tables)
        )
    return encoder.flush()


def encode_batch(symbols: torch.Tensor, indexes: torch.Tensor, tables: CoderTables) -> list[bytes]:
    """One stream per sample of ``symbols`` (``[B, ...]``), each sample coded with the same
    ``indexes`` (shape ``symbols.shape[1:]``); the same bytes as ``encode_stream`` per sample.

    The checks and the table rows are prepared once per batch: per sample they were most of a
    tens-of-bytes payload's coding time (with ``all_finite``, the split-0 student's encode fell
    from 3.08x to 1.49x the patch embedding's on one core, ``results/bench_codec_split0*.json``).
    """
    if len(symbols):
        _check_counts(symbols[0].numel(), indexes)
    _check_symbols(symbols)
    rows = _used_rows(indexes, tables)
    streams = []
    for sample in symbols.flatten(1).int().tolist():
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(sample, *rows)
        streams.append(encoder.flush())
    return streams


MAX_SYMBOL = 2**20
"""Largest latent symbol magnitude coded. A trained codec's symbols stay within a few hundred;
beyond this the input was far outside what the codec was trained on (NaN, inf or a bit flip in
on-board memory), and CompressAI's rANS bypass coder never returns on values near INT32_MIN."""


def _check_counts(symbols: int, indexes: torch.Tensor) -> None:
    """One table index per symbol: the C++ coder reads the indexes without bounds checks."""
    if indexes.numel() != symbols:
        raise ValueError(f"{symbols} symbols but {indexes.numel()} table indexes")


def _check_symbols(symbols: torch.Tensor) -> None:
    """Refuse symbols the coder cannot code in bounded time, before it sees them."""
    if not all_finite(symbols):
        raise ValueError("latent symbols contain NaN or inf (non-finite tokens?)")
    # int64 first: abs(INT32_MIN), what a float too large for int32 becomes, is still negative
    size = symbols.to(torch.float64 if symbols.is_floating_point() else torch.int64).abs()
    if symbols.numel() and size.max() > MAX_SYMBOL:
        raise ValueError(f"latent symbol {float(size.max()):.3g} is outside +-{MAX_SYMBOL} "
                         "(tokens far outside the codec's trained range: NaN, inf or a bit flip?)")


def _used_rows(indexes: torch.Tensor, tables: CoderTables) -> tuple[list, list, list, list]:
    """Indexes remapped to the table rows they use, and those rows only.

    The coder converts every row it is given from Python lists on every call; a Gaussian table
    has 64 rows of up to ~3000 entries, of which one sample uses a handful.
    """
    used, inverse = torch.unique(indexes.reshape(-1).int().cpu(), return_inverse=True)
    rows = used.tolist()
    if rows and not 0 <= rows[0] <= rows[-1] < len(tables.cdfs):
        raise ValueError(f"table index out of range 0..{len(tables.cdfs) - 1}")
    return (
        inverse.tolist(),
        [tables.cdfs[r] for r in rows],
        [tables.lengths[r] for r in rows],
        [tables.offsets[r] for r in rows],
    )


class StreamDecoder:
    """Read the parts of one stream back, in the order they were encoded.

    Args:
        stream: The bytes from ``encode_stream``.
        max_symbols: Symbols that will be read in all; sizes the zero padding.
        what: Names the payload in error messages.

    Raises:
        ValueError: If the stream is shorter than any valid one.
    """

    def __init__(self, stream: bytes, max_symbols: int, what: str) -> None:
        if len(stream) < MIN_STREAM_BYTES:
            raise ValueError(
                f"{what}: range-coded body of {len(stream)} bytes is shorter than the "
                f"{MIN_STREAM_BYTES}-byte coder state"
            )
        self._decoder = RansDecoder()
        self._decoder.set_stream(stream + bytes(8 * max_symbols + 16))

    def decode(self, indexes: torch.Tensor, tables: CoderTables) -> torch.Tensor:
        """Integer symbols with the shape and device of ``indexes``."""
        values = self._decoder.decode_stream(*_used_rows(indexes, tables))
        return torch.tensor(values, dtype=torch.int32, device=indexes.device).view(indexes.shape)
