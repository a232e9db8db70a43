"""Aggregation numerics: FedAvg identity and hand example, ring all-reduce equals the mean."""

from __future__ import annotations

import torch

from research.fed.aggregate import (
    mean_from_sum,
    ring_allreduce,
    server_step,
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


def test_plain_server_step_returns_the_average_itself():
    old, avg = _state(0), _state(1)
    head, velocity = server_step(old, avg, {}, 1.0, 0.0)
    assert head is avg and velocity == {}


def test_server_step_is_flowers_fedavgm():
    """Three rounds of :func:`server_step` equal Flower's ``FedAvgM`` given the same averages
    (one client per round, so its FedAvg is the average itself)."""
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvgM

    def arrays(s):
        return [v.double().numpy() for v in s.values()]

    head = {k: v.double() for k, v in _state(0).items()}
    flower = FedAvgM(initial_parameters=ndarrays_to_parameters(arrays(head)),
                     server_learning_rate=1.7, server_momentum=0.9)
    velocity: dict = {}
    for rnd in range(1, 4):
        avg = {k: v.double() for k, v in _state(10 + rnd).items()}
        fit = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays(avg)), 5, {})
        params, _ = flower.aggregate_fit(rnd, [(None, fit)], [])
        head, velocity = server_step(head, avg, velocity, 1.7, 0.9)
        for ours, theirs in zip(head.values(), parameters_to_ndarrays(params), strict=True):
            assert torch.allclose(ours, torch.from_numpy(theirs), atol=1e-12)
    assert velocity  # momentum keeps a velocity


def test_server_momentum_accumulates_a_constant_pseudo_gradient():
    """A constant step ``g`` under momentum 0.5 moves the head by ``g``, ``1.5 g``, ``1.75 g``."""
    old = {"x": torch.zeros(2, dtype=torch.float64)}
    velocity: dict = {}
    moved = []
    for _ in range(3):
        avg = {"x": old["x"] + 1.0}
        new, velocity = server_step(old, avg, velocity, 1.0, 0.5)
        moved.append(float(new["x"][0] - old["x"][0]))
        old = new
    assert moved == [1.0, 1.5, 1.75]


def test_ema_step_starts_at_the_first_release_and_averages_the_rest():
    from research.fed.aggregate import ema_step

    heads = [{"x": torch.full((2,), v, dtype=torch.float64)} for v in (4.0, 0.0, 2.0)]
    average = ema_step({}, heads[0], 0.75)
    assert torch.equal(average["x"], heads[0]["x"]) and average["x"] is not heads[0]["x"]
    average = ema_step(average, heads[1], 0.75)
    assert average["x"].tolist() == [3.0, 3.0]  # 0.75 * 4 + 0.25 * 0
    average = ema_step(average, heads[2], 0.75)
    assert average["x"].tolist() == [2.75, 2.75]
