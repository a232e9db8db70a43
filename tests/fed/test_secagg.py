"""Secure aggregation equals plain FedAvg, with dropouts, from masked inputs only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from research.fed.secagg import SecAggError, secure_sum, secure_weighted_mean
from research.models.averaging import weighted_average


def states(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"w": torch.randn(40, 8, generator=g), "b": torch.randn(8, generator=g) * 10}
            for _ in range(n)]


@pytest.mark.parametrize("dropped", [set(), {3}, {0, 7}])
def test_the_secure_mean_is_fedavg_of_the_survivors_with_up_to_20_percent_dropped(dropped):
    s = states(10)
    weights = [float(w) for w in np.random.default_rng(1).integers(50, 500, size=10)]
    mean, cost = secure_weighted_mean(s, weights, dropped)
    keep = [i for i in range(10) if i not in dropped]
    plain = weighted_average([s[i] for i in keep], [weights[i] for i in keep])
    for k in plain:
        torch.testing.assert_close(mean[k], plain[k], rtol=1e-6, atol=1e-6)  # float32 states
    assert cost.masked_up == 2 * cost.plain_up  # 64-bit fixed point: twice the float32 update
    assert cost.overhead_bytes > 0 and cost.extra_round_trips == 3


def test_masks_cancel_only_when_every_survivor_is_unmasked():
    vectors = [np.full(16, float(i)) for i in range(5)]
    total, _ = secure_sum(vectors)
    np.testing.assert_allclose(total, np.full(16, 10.0), atol=1e-9)
    total32, cost32 = secure_sum(vectors, bits=32, frac_bits=16)
    np.testing.assert_allclose(total32, np.full(16, 10.0), atol=1e-4)
    assert cost32.masked_up == cost32.plain_up


def test_too_many_dropouts_cannot_be_unmasked():
    with pytest.raises(SecAggError, match="2 of 5 satellites survived, fewer than the threshold 3"):
        secure_sum([np.ones(4)] * 5, dropped={0, 1, 2})
    with pytest.raises(SecAggError, match="threshold 9 must be between 2 and the 5"):
        secure_sum([np.ones(4)] * 5, threshold=9)


def test_exactly_threshold_survivors_unmask_and_overflow_is_refused():
    vectors = [np.full(8, float(i) - 2.0) for i in range(5)]
    total, cost = secure_sum(vectors, dropped={3, 4}, threshold=3)
    np.testing.assert_allclose(total, np.full(8, -3.0), atol=1e-9)  # -2 - 1 + 0
    assert cost.keys_up == 64  # a mask key and a share-encryption key
    with pytest.raises(SecAggError, match="does not fit 32-bit fixed point"):
        secure_sum([np.full(4, 20000.0)] * 4, bits=32, frac_bits=16)
    with pytest.raises(SecAggError, match="must be finite"):
        secure_sum([np.array([np.nan, 1.0])] * 3)
