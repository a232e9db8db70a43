"""Aggregation: weighted FedAvg, ring all-reduce chunk by chunk, inter-orbit combination.

Numerics run in float64 so every aggregation path (star, ring, Flower) gives the same mean to
float32 precision; the weighted mean is :func:`research.models.averaging.weighted_average`
(re-exported here), shared with checkpoint soups. The ring is simulated step by step: in each of
the ``2(K-1)`` steps every node sends one chunk to its successor, which may only send on once the
chunk it waits for arrived; the ``hop`` callback prices each transfer on the contact plan and
returns the receiver's clock.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from research.fed.ledger import Track
from research.models.averaging import State, flatten, unflatten, weighted_average

__all__ = ["WIRE_BYTES", "HopFn", "State", "flatten", "mean_from_sum", "ring_allreduce",
           "server_step", "state_bytes", "unflatten", "weighted_average", "weighted_vector"]

HopFn = Callable[[int, int, float, Track], Track]

WIRE_BYTES = 4
"""Bytes per exchanged element: states and ring chunks travel as float32."""


def state_bytes(state: State) -> int:
    """Bytes of a state dict as sent (float32)."""
    return sum(v.numel() * WIRE_BYTES for v in state.values())


def weighted_vector(state: State, weight: float) -> torch.Tensor:
    """What a ring carries: ``w * s`` with ``w`` appended, so sums give the weighted mean."""
    return torch.cat([flatten(state) * float(weight), torch.tensor([float(weight)],
                                                                    dtype=torch.float64)])


def mean_from_sum(vec: torch.Tensor, like: State) -> State:
    """Weighted mean from a reduced :func:`weighted_vector` sum."""
    return unflatten(vec[:-1] / vec[-1], like)


def ring_allreduce(vectors: list[torch.Tensor], tracks: list[Track] | None = None,
                   hop: HopFn | None = None) -> tuple[list[torch.Tensor], list[Track] | None]:
    """Sum ``vectors`` over a ring (reduce-scatter, then all-gather); every node gets the sum.

    Node ``i`` sends to ``(i + 1) % K``. ``hop(i, j, n_bytes, track_i)`` returns the clock at
    which ``j`` holds the chunk (it may raise); with ``hop`` None only the numerics run.
    """
    k = len(vectors)
    if k == 1:
        return [vectors[0].clone()], tracks
    chunks = [list(torch.tensor_split(v.clone(), k)) for v in vectors]

    def step(chunk_of: Callable[[int], int], reduce: bool) -> None:
        nonlocal tracks
        payloads = [(i, chunk_of(i), chunks[i][chunk_of(i)].clone()) for i in range(k)]
        arrivals = None
        if hop is not None and tracks is not None:
            arrivals = [hop(i, (i + 1) % k, p.numel() * WIRE_BYTES, tracks[i])
                        for i, _, p in payloads]
        for i, c, p in payloads:
            j = (i + 1) % k
            chunks[j][c] = chunks[j][c] + p if reduce else p
        if arrivals is not None:
            new = list(tracks)
            for i, arrival in enumerate(arrivals):
                j = (i + 1) % k
                new[j] = arrival if arrival.t > tracks[j].t else tracks[j]
            tracks = new

    for s in range(k - 1):
        step(lambda i, s=s: (i - s) % k, reduce=True)
    for s in range(k - 1):
        step(lambda i, s=s: (i + 1 - s) % k, reduce=False)
    return [torch.cat(c) for c in chunks], tracks


def server_step(old: State, averaged: State, velocity: State, lr: float, momentum: float
                ) -> tuple[State, State]:
    """FedAvgM (Hsu et al. 2019; server momentum in DP-FedAvg, McMahan et al. 2018): the head
    after one server step, and the velocity to keep.

    The round's average is read as a pseudo-gradient ``g = old - averaged``; the velocity
    ``v = momentum * v + g`` (``v = g`` when ``velocity`` is empty: the first step) and the
    head ``old - lr * v``, Flower's ``FedAvgM`` to the letter. ``lr`` 1 and ``momentum`` 0 give
    ``averaged`` itself. It acts on the released average only, so under DP it is
    post-processing (no privacy cost), and every satellite of a ring can run it alike.
    """
    if lr == 1.0 and momentum == 0.0:
        return averaged, {}
    x, avg = flatten(old), flatten(averaged)
    g = x - avg
    v = g if not velocity or momentum == 0.0 else momentum * flatten(velocity) + g
    return unflatten(x - lr * v, old), (unflatten(v, old) if momentum else {})


def ema_step(average: State, head: State, decay: float) -> State:
    """The exponential moving average of released heads after one more (``head`` itself when
    ``average`` is empty: the first release, so the average carries no pull to the initial head).

    Polyak averaging of the iterates, as in DP training at scale (De et al. 2022): under DP each
    released head is the optimum plus that round's noise, and the average keeps the first while
    shrinking the second. It reads released heads only: post-processing, no privacy cost.
    """
    if not average:
        return {k: v.clone() for k, v in head.items()}
    return unflatten(decay * flatten(average) + (1.0 - decay) * flatten(head), head)
