"""Training curves from Lightning's CSVLogger: one row per epoch, whatever was logged.

The CSV mixes step rows and epoch rows with blank cells; runs trained elsewhere (a GPU machine)
come back as these files, so comparing fine-tuning recipes needs only them.
"""

from __future__ import annotations

import csv
from pathlib import Path


def epoch_metrics(metrics_csv: str | Path, keys: tuple[str, ...] = ("val/acc", "val/loss")) -> dict[str, list[float]]:
    """``{"epoch": [...], key: [...]}`` with one entry per epoch that logged every key.

    Raises a clear error when the file is not a CSVLogger metrics file or never logged a key.
    """
    path = Path(metrics_csv)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such metrics file (expected <save_dir>/<name>/version_N/metrics.csv)")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        missing = [key for key in ("epoch", *keys) if key not in fields]
        if missing:
            raise ValueError(f"{path}: columns {missing} not logged; it has {fields}")
        by_epoch: dict[int, dict[str, float]] = {}
        for row in reader:
            for key in keys:
                if row[key] not in ("", None):
                    by_epoch.setdefault(int(row["epoch"]), {})[key] = float(row[key])
    epochs = sorted(e for e, values in by_epoch.items() if len(values) == len(keys))
    curves: dict[str, list[float]] = {"epoch": [float(e) for e in epochs]}
    for key in keys:
        curves[key] = [by_epoch[e][key] for e in epochs]
    return curves


def best_epoch(curves: dict[str, list[float]], key: str = "val/acc") -> tuple[int, float]:
    """Epoch and value of the highest ``key`` (what a ``ModelCheckpoint(mode="max")`` keeps)."""
    if not curves[key]:
        raise ValueError(f"no epoch logged {key}")
    i = max(range(len(curves[key])), key=curves[key].__getitem__)
    return int(curves["epoch"][i]), curves[key][i]
