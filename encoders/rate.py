"""Counting bits: estimated from likelihoods while training, real from payloads at evaluation.

Training logs ``bits_per_inference`` from the likelihoods (differentiable, cheap); evaluation
counts ``8 * len(payload)`` of real bytes. Logging both shows the gap (headers, range-coder flush,
stale tables), which CompressAI users otherwise discover late (its issues #236, #253).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["estimated_bits", "payload_bits", "rate_loss"]


def estimated_bits(likelihoods: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Estimated bits per sample, ``-log2`` of the likelihoods summed over all but the batch dim.

    Args:
        likelihoods: ``forward(...)["likelihoods"]``; every tensor is ``[B, ...]``.

    Returns:
        A differentiable ``[B]`` tensor; a ``[0]`` tensor when there are no likelihoods (links
        without an entropy model), so callers can fall back to ``payload_bits``.
    """
    total: torch.Tensor | None = None
    for lik in likelihoods.values():
        bits = -torch.log2(lik).flatten(1).sum(dim=1)
        total = bits if total is None else total + bits
    return total if total is not None else torch.zeros(0)


def payload_bits(payloads: Sequence[bytes]) -> torch.Tensor:
    """Real bits per sample, ``8 * len(payload)`` (header included), as a float ``[B]`` tensor."""
    return torch.tensor([8.0 * len(p) for p in payloads], dtype=torch.float64)


def rate_loss(likelihoods: Mapping[str, torch.Tensor], num_values: int) -> torch.Tensor:
    """Mean estimated bits per coded value (e.g. per token element), for a rate-task loss.

    Normalising keeps the trade-off weight comparable across token widths and split points.

    Args:
        likelihoods: ``forward(...)["likelihoods"]``.
        num_values: Values per sample the rate is spread over (``N * D`` for tokens).
    """
    bits = estimated_bits(likelihoods)
    if bits.numel() == 0:
        return torch.zeros(())
    return bits.mean() / max(1, num_values)
