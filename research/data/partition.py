"""Splitting a labelled set across federated clients (satellites): IID, Dirichlet label skew, shards,
or per-client class weights (e.g. what each satellite flew over: :mod:`research.fed.ground_track`).

All partitioners are deterministic given ``seed`` and return one index array per client; every
index is assigned exactly once.
"""

from __future__ import annotations

import numpy as np


def _check(labels: np.ndarray, num_clients: int) -> np.ndarray:
    labels = np.asarray(labels)
    if num_clients < 1:
        raise ValueError(f"num_clients={num_clients}; expected at least 1")
    if len(labels) < num_clients:
        raise ValueError(f"{len(labels)} samples cannot be split across {num_clients} clients")
    return labels


def iid_partition(labels: np.ndarray, num_clients: int, seed: int = 0) -> list[np.ndarray]:
    """Shuffle and deal out equal shares: every client sees the global label distribution."""
    labels = _check(labels, num_clients)
    perm = np.random.default_rng(seed).permutation(len(labels))
    return [np.sort(part) for part in np.array_split(perm, num_clients)]


def dirichlet_partition(
    labels: np.ndarray, num_clients: int, alpha: float = 0.5, seed: int = 0, min_size: int = 1
) -> list[np.ndarray]:
    """Label skew (Hsu et al. 2019): each class is split across clients by a Dirichlet(alpha) draw.

    Small ``alpha`` gives strongly non-IID clients; large ``alpha`` tends to IID. Draws are repeated
    (deterministically) until every client holds at least ``min_size`` samples.
    """
    labels = _check(labels, num_clients)
    if alpha <= 0:
        raise ValueError(f"dirichlet alpha={alpha}; expected a positive number")
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for cls in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == cls))
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares) * len(idx)).astype(int)[:-1]
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
    raise ValueError(
        f"could not give each of {num_clients} clients {min_size} samples with alpha={alpha}; "
        "use a larger alpha or fewer clients"
    )


def shard_partition(
    labels: np.ndarray, num_clients: int, shards_per_client: int = 2, seed: int = 0
) -> list[np.ndarray]:
    """McMahan et al. 2017 pathological split: sort by label, cut into shards, deal shards out."""
    labels = _check(labels, num_clients)
    num_shards = num_clients * shards_per_client
    if num_shards > len(labels):
        raise ValueError(f"{num_shards} shards exceed the {len(labels)} samples")
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    shards = np.array_split(order, num_shards)
    assignment = rng.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in assignment]


def weighted_partition(labels: np.ndarray, weights: np.ndarray, seed: int = 0
                       ) -> list[np.ndarray]:
    """Each class's samples dealt at random to clients in proportion to ``weights[client, class]``
    (largest remainders, so the counts are exact); every sample is used.

    A class that some sample holds but no client weighs is an error naming it: its samples would
    have nowhere to go.
    """
    labels = np.asarray(labels)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or len(w) < 1:
        raise ValueError(f"weights must be (clients, classes), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    if len(labels) and (labels.min() < 0 or labels.max() >= w.shape[1]):
        raise ValueError(f"labels must lie in [0, {w.shape[1]}) (one weight column per class), "
                         f"got {labels.min()}..{labels.max()}")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(w))]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        col = w[:, cls]
        if col.sum() <= 0:
            raise ValueError(f"no client has weight for class {int(cls)} ({len(idx)} samples)")
        quota = col / col.sum() * len(idx)
        counts = np.floor(quota).astype(np.int64)
        short = len(idx) - counts.sum()
        counts[np.argsort(-(quota - counts), kind="stable")[:short]] += 1
        for client, chunk in enumerate(np.split(idx, np.cumsum(counts)[:-1])):
            parts[client].extend(chunk.tolist())
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


PARTITIONERS = {"iid": iid_partition, "dirichlet": dirichlet_partition, "shards": shard_partition}


def partition(labels: np.ndarray, num_clients: int, scheme: str = "dirichlet", **kwargs) -> list[np.ndarray]:
    """Dispatch by name (``iid``, ``dirichlet``, ``shards``); an unknown name lists the valid ones."""
    if scheme not in PARTITIONERS:
        raise ValueError(f"unknown partition scheme {scheme!r}; expected one of {sorted(PARTITIONERS)}")
    return PARTITIONERS[scheme](labels, num_clients, **kwargs)
