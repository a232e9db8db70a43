"""Weighted averaging of state dicts (FedAvg, model soups), in float64.

The one averaging of weights: federated aggregation (:mod:`research.fed.aggregate`) and checkpoint
soups (:func:`research.models.weights.average_task_checkpoints`) both call
:func:`weighted_average`, so every path gives the same mean to float32 precision.
"""

from __future__ import annotations

import torch

State = dict[str, torch.Tensor]


def flatten(state: State) -> torch.Tensor:
    """All tensors of ``state`` as one float64 vector (key order of the dict)."""
    return torch.cat([v.detach().reshape(-1).double() for v in state.values()])


def unflatten(vec: torch.Tensor, like: State) -> State:
    """Inverse of :func:`flatten`, cast back to each tensor's dtype."""
    out, i = {}, 0
    for k, v in like.items():
        n = v.numel()
        out[k] = vec[i:i + n].reshape(v.shape).to(v.dtype).clone()
        i += n
    return out


def weighted_average(states: list[State], weights: list[float]) -> State:
    """FedAvg: ``sum_i w_i s_i / sum_i w_i``; weights are sample counts."""
    if not states or len(states) != len(weights):
        raise ValueError(f"need as many weights as states, got {len(states)} and {len(weights)}")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("weights must sum to a positive number")
    acc = sum(flatten(s) * float(w) for s, w in zip(states, weights, strict=True))
    return unflatten(acc / total, states[0])
