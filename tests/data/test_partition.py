"""Federated partitioners: complete, disjoint, deterministic, and as skewed as asked."""

from __future__ import annotations

import numpy as np
import pytest

from research.data import partition
from research.data.partition import weighted_partition

LABELS = np.repeat(np.arange(10), 100)


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards"])
def test_every_index_once_and_deterministic(scheme: str) -> None:
    parts = partition(LABELS, 8, scheme, seed=1)
    again = partition(LABELS, 8, scheme, seed=1)
    merged = np.concatenate(parts)
    assert len(parts) == 8 and sorted(merged.tolist()) == list(range(len(LABELS)))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def _mean_classes_per_client(parts: list[np.ndarray]) -> float:
    return float(np.mean([len(np.unique(LABELS[p])) for p in parts]))


def test_dirichlet_alpha_controls_skew() -> None:
    skewed = partition(LABELS, 10, "dirichlet", alpha=0.1, seed=0)
    mild = partition(LABELS, 10, "dirichlet", alpha=100.0, seed=0)
    assert _mean_classes_per_client(skewed) < _mean_classes_per_client(mild)
    assert _mean_classes_per_client(mild) == 10


def test_shards_give_few_classes() -> None:
    parts = partition(LABELS, 10, "shards", shards_per_client=2, seed=0)
    assert _mean_classes_per_client(parts) <= 2


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="unknown partition scheme 'zipf'"):
        partition(LABELS, 4, "zipf")
    with pytest.raises(ValueError, match="alpha"):
        partition(LABELS, 4, "dirichlet", alpha=0)
    with pytest.raises(ValueError, match="num_clients"):
        partition(LABELS, 0, "iid")


def test_weighted_partition_follows_each_clients_class_weights() -> None:
    weights = np.zeros((3, 10))
    weights[0, :5] = 1.0  # client 0 only ever saw classes 0-4
    weights[1, 5:] = 1.0  # client 1 classes 5-9
    weights[2] = 1.0  # client 2 everything: it shares every class with one of the others
    parts = weighted_partition(LABELS, weights, seed=3)
    merged = np.concatenate(parts)
    assert sorted(merged.tolist()) == list(range(len(LABELS)))
    assert set(LABELS[parts[0]]) <= set(range(5)) and set(LABELS[parts[1]]) <= set(range(5, 10))
    for cls in range(10):  # exact halves (largest remainders), not a random draw
        n = int((LABELS == cls).sum())
        owner = 0 if cls < 5 else 1
        assert abs(int((LABELS[parts[owner]] == cls).sum()) - n / 2) <= 0.5
    again = weighted_partition(LABELS, weights, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_weighted_partition_names_a_class_nobody_saw() -> None:
    weights = np.ones((4, 10))
    weights[:, 7] = 0.0
    with pytest.raises(ValueError, match="no client has weight for class 7"):
        weighted_partition(LABELS, weights)
    with pytest.raises(ValueError, match="non-negative"):
        weighted_partition(LABELS, -np.ones((4, 10)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        weighted_partition(LABELS, np.ones((4, 5)))
