"""One ledger vocabulary and one writer for every row: per inference, per request, per round.

Evaluation (:mod:`research.eval`), serving (:mod:`research.serving`) and federated fine-tuning
(:mod:`research.fed`) all report the same quantities under the same names, so a figure or a
table can put their rows side by side without a translation table:

- **bytes per link type**: :data:`BYTES_FIELDS`, what crossed each kind of link (a transfer's
  bytes counted once per hop of that kind).
- **energy by where it is spent**: :data:`ENERGY_FIELDS`, on-board compute, on-board transmit
  (the satellites' radios and ISL terminals) and ground (compute on the ground servers).
- **latency split**: :data:`LATENCY_FIELDS`, on-board compute, queueing (waiting for a contact
  or for a busy link, transmitter or antenna), transmission, propagation, ground compute and the
  return leg; the parts add up to ``latency_s`` (:func:`check_latency`).

No torch and no Lightning here: the lowest layer of ``research`` that every package may import.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BYTES_FIELDS",
    "ENERGY_FIELDS",
    "LATENCY_FIELDS",
    "check_latency",
    "total_energy_j",
    "write_rows",
]

BYTES_FIELDS = ("bytes_downlink", "bytes_uplink", "bytes_isl")
"""Bytes that crossed satellite -> ground, ground -> satellite and inter-satellite links."""

ENERGY_FIELDS = ("energy_onboard_compute_j", "energy_onboard_transmit_j", "energy_ground_j")
"""Joules by where they are spent: on-board compute, on-board transmission, ground compute."""

LATENCY_FIELDS = ("onboard_compute_s", "queue_s", "transmit_s", "propagation_s",
                  "ground_compute_s", "return_s")
"""Seconds by cause; they add up to ``latency_s`` (``queue_s``: waiting for a contact or for a
busy link / transmitter / antenna; ``return_s``: a return leg after the ground, e.g. a head on
board)."""


def total_energy_j(row: Mapping[str, Any] | Any) -> float:
    """On-board compute + on-board transmit + ground energy of one row (a dict or dataclass)."""
    get = row.get if isinstance(row, Mapping) else lambda k, d=0.0: getattr(row, k, d)
    return float(sum(get(k, 0.0) for k in ENERGY_FIELDS))


def check_latency(row: Mapping[str, Any] | Any, where: str = "row", tol: float = 1e-6) -> None:
    """Raise if the latency parts do not add up to ``latency_s`` (an accounting bug, never data).

    Rows whose ``latency_s`` is not finite (undelivered, missed) are not checked.
    """
    get = row.get if isinstance(row, Mapping) else lambda k, d=0.0: getattr(row, k, d)
    total = float(get("latency_s", math.nan))
    if not math.isfinite(total):
        return
    parts = sum(float(get(p, 0.0)) for p in LATENCY_FIELDS)
    if not math.isclose(parts, total, rel_tol=tol, abs_tol=tol):
        raise AssertionError(f"{where}: latency parts sum to {parts} s, total is {total} s")


def _as_dict(row: Any) -> dict:
    if is_dataclass(row) and not isinstance(row, type):
        return asdict(row)
    if isinstance(row, Mapping):
        return dict(row)
    raise TypeError(f"a ledger row must be a dataclass or a mapping, got {type(row).__name__}")


def write_rows(rows: Sequence[Any], out_dir: str | Path, stem: str = "ledger",
               meta: Mapping[str, Any] | None = None, rows_key: str = "rows"
               ) -> dict[str, Path]:
    """Write ``rows`` (dataclasses or dicts) as ``<stem>.csv`` and ``<stem>.json`` under ``out_dir``.

    The CSV has one column per key in first-seen order; the JSON holds ``meta`` (the config and
    profiles that produced the rows) beside the rows, under ``rows_key``. Returns ``{"csv": path, "json": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dicts = [_as_dict(r) for r in rows]
    paths = {"csv": out / f"{stem}.csv", "json": out / f"{stem}.json"}
    keys = list(dict.fromkeys(k for d in dicts for k in d))
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(dicts)
    # default=str: config values such as paths or numpy scalars are recorded as text.
    paths["json"].write_text(json.dumps({**(meta or {}), rows_key: dicts}, indent=1, default=str))
    return paths
