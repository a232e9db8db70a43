"""Aggregation numerics: FedAvg identity and hand example, ring all-reduce equals the mean."""

from __future__ import annotations

import torch

from research.fed.aggregate import (
    mean_from_sum,
    ring_allreduce,
    state_bytes,
    weighted_average,
    weighted_vector,
)
from research.fed.ledger import Track


def _state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 5, generator=g), "b": torch.randn(3, generator=g)}


def test_averaging_identical_clients_is_identity():
    s = _state(0)
    out = weighted_average([s, {k: v.clone() for k, v in s.items()}, s], [1, 7, 3])
    for k in s:
        assert torch.equal(out[k], s[k])


def test_weighted_average_hand_example():
    a = {"x": torch.tensor([1.0, 2.0])}
    b = {"x": torch.tensor([4.0, 8.0])}
    out = weighted_average([a, b], [1, 2])  # (1*a + 2*b) / 3
    assert torch.allclose(out["x"], torch.tensor([3.0, 6.0]))


def test_ring_allreduce_equals_mean_and_prices_every_hop():
    states = [_state(i) for i in range(5)]
    weights = [3, 1, 4, 1, 5]
    vecs = [weighted_vector(s, w) for s, w in zip(states, weights, strict=True)]
    hops = []

    def hop(i, j, nb, tr):
        hops.append((i, j, nb))
        return tr.add("transmit_s", 1.0)

    out, tracks = ring_allreduce(vecs, [Track(0.0)] * 5, hop)
    expected = weighted_average(states, weights)
    for v in out:
        got = mean_from_sum(v, states[0])
        for k in expected:
            assert torch.allclose(got[k], expected[k], atol=1e-6)
    assert len(hops) == 2 * 4 * 5  # 2(K-1) steps, K sends each
    assert all(j == (i + 1) % 5 for i, j, _ in hops)
    assert sum(nb for *_, nb in hops) == 2 * 4 * vecs[0].numel() * 4  # each step: one vector
    assert [t.t for t in tracks] == [8.0] * 5  # one second per step, 8 steps


def test_state_bytes_counts_float32_elements():
    assert state_bytes(_state(0)) == (15 + 3) * 4
