"""ANN-to-SNN conversion of an MLP head: the baseline the trained spiking head must beat.

Method: data-based weight normalisation with a robust maximum (Rueckauer, Lungu, Hu, Pfeiffer
& Liu, "Conversion of continuous-valued deep networks to efficient event-driven networks for
image classification", Frontiers in Neuroscience 11:682, 2017; after Diehl et al., IJCNN 2015).
For each ReLU layer ``l`` the activation scale ``lam_l`` is the ``p``-th percentile (p = 99.9)
of its positive activations on calibration data; weights become ``W_l * lam_{l-1} / lam_l`` and
biases ``b_l / lam_l``, so integrate-and-fire neurons with threshold 1 and reset by subtraction
fire at rate ``~ a_l / lam_l``. The output layer keeps the ANN scale (``W_L * lam_{L-1}``, ``b_L``)
and is read from non-firing integrators, whose mean input is then the ANN logit.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from snn.head import SpikingHead

__all__ = ["robust_max", "convert_head"]

_SKIP = (nn.Dropout, nn.Identity)


def robust_max(values: torch.Tensor, percentile: float = 99.9) -> float:
    """The ``percentile`` of the positive entries of ``values`` (1.0 if there are none).

    Robust to the rare outliers that would make a plain maximum set thresholds too high and
    firing rates too low (Rueckauer et al. 2017).
    """
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    pos = values.detach().flatten()
    pos = pos[pos > 0].float()
    if pos.numel() == 0:
        return 1.0
    k = max(1, min(pos.numel(), math.ceil(percentile / 100.0 * pos.numel())))
    return float(torch.kthvalue(pos.cpu(), k).values)


def _parse(ann: nn.Module) -> tuple[nn.Module | None, list[nn.Linear]]:
    """Split ``[LayerNorm] (Linear ReLU)* Linear`` into its norm and linears."""
    mods = list(ann) if isinstance(ann, nn.Sequential) else [ann]
    mods = [m for m in mods if not isinstance(m, _SKIP)]
    norm = None
    if mods and isinstance(mods[0], nn.LayerNorm):
        norm = mods.pop(0)
    linears = []
    for j, m in enumerate(mods):
        want_linear = j % 2 == 0
        if want_linear and isinstance(m, nn.Linear):
            linears.append(m)
        elif not want_linear and isinstance(m, nn.ReLU):
            continue
        else:
            raise ValueError(
                "convert_head expects nn.Sequential([LayerNorm,] (Linear, ReLU)*, Linear) "
                f"(Dropout/Identity ignored); got {type(m).__name__} at position {j}"
            )
    if not linears or not isinstance(mods[-1], nn.Linear):
        raise ValueError("convert_head expects the head to end with a Linear layer")
    return norm, linears


@torch.no_grad()
def convert_head(
    ann: nn.Module,
    calibration: torch.Tensor,
    num_steps: int = 32,
    percentile: float = 99.9,
    mem_init: float = 0.5,
    surrogate: str = "fast_sigmoid",
) -> SpikingHead:
    """Convert a trained ReLU MLP head into a :class:`snn.head.SpikingHead`.

    Args:
        ann: ``nn.Sequential([LayerNorm,] Linear, ReLU, ..., Linear)``; timm's head is
            ``nn.Sequential(vit.fc_norm, vit.head)``.
        calibration: Pooled features ``[B, D]`` used only for activation statistics.
        num_steps: Timesteps ``T`` of the converted head.
        percentile: Percentile for the robust maximum of each layer.
        mem_init: Initial membrane potential as a fraction of the threshold (0.5 halves the
            average rounding error; Bu et al., ICLR 2022).
        surrogate: Surrogate gradient, for fine-tuning the converted head afterwards.

    Returns:
        A head with integrate-and-fire neurons (``beta=1``, threshold 1, reset by
        subtraction), direct encoding and the membrane readout.
    """
    norm, linears = _parse(ann)
    first = linears[0]
    head = SpikingHead(
        first.in_features,
        linears[-1].out_features,
        hidden=[lin.out_features for lin in linears[:-1]],
        num_steps=num_steps,
        beta=1.0,
        threshold=1.0,
        surrogate=surrogate,
        encoding="direct",
        readout="membrane",
        norm=False,
        reset="subtract",
        mem_init=mem_init,
        out_beta=1.0,
    ).to(device=first.weight.device, dtype=first.weight.dtype)
    if norm is not None:
        head.norm = copy.deepcopy(norm)
    x = norm(calibration) if norm is not None else calibration
    lam_prev = 1.0
    for lin, new in zip(linears[:-1], head.fcs[:-1], strict=True):
        x = torch.relu(lin(x))
        lam = robust_max(x, percentile)
        new.weight.copy_(lin.weight * (lam_prev / lam))
        if lin.bias is not None:
            new.bias.copy_(lin.bias / lam)
        else:
            new.bias.zero_()
        lam_prev = lam
    last, new_last = linears[-1], head.fcs[-1]
    new_last.weight.copy_(last.weight * lam_prev)
    if last.bias is not None:
        new_last.bias.copy_(last.bias)
    else:
        new_last.bias.zero_()
    return head
