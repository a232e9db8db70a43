"""Token layout at a cut: optional prefix tokens (CLS) followed by a square grid of patch tokens.

Codecs may merge ``k x k`` neighbouring grid tokens into one unit before coding (fewer, wider
units: neighbouring patches of a satellite image are strongly correlated). Prefix tokens are never
merged; they are coded as units of their own.
"""

from __future__ import annotations

import math

import torch

__all__ = ["TokenLayout"]


class TokenLayout:
    """Split ``[B, N, D]`` tokens into prefix tokens and (merged) grid units, and back.

    Args:
        num_tokens: ``N``, all tokens at the cut, prefix included.
        dim: ``D``, token width.
        merge_tokens: Side ``k`` of the merged window (1: no merging, 2: 2x2 tokens per unit).
        num_prefix_tokens: Leading tokens that are not on the grid (e.g. 1 for a CLS token).

    Raises:
        ValueError: If the grid is not square or its side is not a multiple of ``merge_tokens``.
    """

    def __init__(
        self, num_tokens: int, dim: int, merge_tokens: int = 1, num_prefix_tokens: int = 0
    ) -> None:
        if num_tokens <= num_prefix_tokens or num_prefix_tokens < 0:
            raise ValueError(
                f"num_tokens={num_tokens} must exceed num_prefix_tokens={num_prefix_tokens} >= 0"
            )
        if merge_tokens < 1 or dim < 1:
            raise ValueError(f"merge_tokens and dim must be >= 1, got {merge_tokens} and {dim}")
        grid = num_tokens - num_prefix_tokens
        side = math.isqrt(grid)
        if merge_tokens > 1 and (side * side != grid or side % merge_tokens):
            raise ValueError(
                f"merging {merge_tokens}x{merge_tokens} tokens needs a square grid whose side is a "
                f"multiple of {merge_tokens}; got {grid} grid tokens "
                f"({num_tokens} tokens - {num_prefix_tokens} prefix)"
            )
        self.num_tokens = num_tokens
        self.dim = dim
        self.merge_tokens = merge_tokens
        self.num_prefix_tokens = num_prefix_tokens
        self.side = side
        self.num_units = grid // (merge_tokens * merge_tokens)
        self.unit_dim = dim * merge_tokens * merge_tokens

    def check(self, tokens: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``tokens`` is ``[B, N, D]`` for this layout."""
        if tokens.dim() != 3 or tuple(tokens.shape[1:]) != (self.num_tokens, self.dim):
            raise ValueError(
                f"expected tokens of shape [B, {self.num_tokens}, {self.dim}], "
                f"got {list(tokens.shape)}"
            )

    def split(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, N, D]`` -> prefix ``[B, P, D]`` and units ``[B, U, k*k*D]``."""
        self.check(tokens)
        prefix, grid = tokens[:, : self.num_prefix_tokens], tokens[:, self.num_prefix_tokens :]
        k = self.merge_tokens
        if k == 1:
            return prefix, grid
        b, s, d = grid.shape[0], self.side, self.dim
        grid = grid.reshape(b, s // k, k, s // k, k, d).permute(0, 1, 3, 2, 4, 5)
        return prefix, grid.reshape(b, self.num_units, self.unit_dim)

    def join(self, prefix: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        """Inverse of ``split``."""
        k = self.merge_tokens
        if k > 1:
            b, s, d = units.shape[0], self.side, self.dim
            units = units.reshape(b, s // k, s // k, k, k, d).permute(0, 1, 3, 2, 4, 5)
            units = units.reshape(b, s * s, d)
        return torch.cat([prefix, units], dim=1)
