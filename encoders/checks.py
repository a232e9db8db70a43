"""Input checks shared by the links and the coder."""

from __future__ import annotations

import torch

__all__ = ["all_finite"]


def all_finite(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is finite (integer tensors always are).

    One min/max pass: NaN and infinities propagate into the extremes. On one core this is about
    ten times faster than ``torch.isfinite(x).all()``, which writes a mask first; on a satellite
    that check alone took a third of the split-0 student's encode time.
    """
    if not x.is_floating_point() or x.numel() == 0:
        return True
    return bool(torch.isfinite(x.amax()) & torch.isfinite(x.amin()))  # aminmax was 7x slower
