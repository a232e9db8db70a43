"""Federated partitioners: complete, disjoint, deterministic, and as skewed as asked."""

from __future__ import annotations

import numpy as np
import pytest

from research.data import partition

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
