"""Seeded, stratified train/val/test splits, recorded as JSON so a split can be reproduced exactly."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Indices of each split into the sorted file list, and what made them."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int
    fractions: tuple[float, float, float]

    def digest(self) -> str:
        """SHA-256 of the three index lists: two runs used the same split iff digests match."""
        h = hashlib.sha256()
        for name in SPLITS:
            h.update(name.encode() + np.asarray(getattr(self, name), dtype=np.int64).tobytes())
        return h.hexdigest()


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0
) -> Split:
    """Split each class separately with one seeded permutation, so class ratios hold in every split."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions {fractions} must be three non-negative numbers summing to 1")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        parts["train"].append(idx[:n_train])
        parts["val"].append(idx[n_train : n_train + n_val])
        parts["test"].append(idx[n_train + n_val :])
    merged = {k: np.sort(np.concatenate(v)) for k, v in parts.items()}
    return Split(**merged, seed=seed, fractions=tuple(fractions))  # type: ignore[arg-type]


def save_split(split: Split, names: tuple[str, ...], path: str | Path, **extra: object) -> None:
    """Write the split as file names per split (robust to re-ordering) plus seed, fractions, digest."""
    record = {
        "seed": split.seed,
        "fractions": list(split.fractions),
        "digest": split.digest(),
        **extra,
        **{name: [names[i] for i in getattr(split, name)] for name in SPLITS},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=0))


def load_split(path: str | Path, names: tuple[str, ...]) -> Split:
    """Read a recorded split back against the current file list; names it cannot find are an error."""
    record = json.loads(Path(path).read_text())
    position = {name: i for i, name in enumerate(names)}
    indices = {}
    for split_name in SPLITS:
        missing = [n for n in record[split_name] if n not in position]
        if missing:
            raise ValueError(
                f"split file {str(path)!r} names {len(missing)} images not in the data set "
                f"(first: {missing[0]!r}); expected the same data set it was made from"
            )
        indices[split_name] = np.sort(np.array([position[n] for n in record[split_name]], dtype=np.int64))
    split = Split(**indices, seed=int(record["seed"]), fractions=tuple(record["fractions"]))
    if record.get("digest") not in (None, split.digest()):
        raise ValueError(f"split file {str(path)!r} digest does not match its indices")
    return split
