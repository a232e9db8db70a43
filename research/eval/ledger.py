"""The per-inference ledger: one row per (scheme, capture), its summary, and its files.

Every evaluation ends here, so every figure and table is drawn from the same record: whether the
answer was right, the bytes on each link type, energy split into on-board compute and
transmission, and latency split into on-board compute, waiting for a contact, transmission,
propagation, ground compute and the return leg. The parts add up to the total by construction
(:func:`check_row` verifies it).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

__all__ = ["LATENCY_PARTS", "LedgerRow", "check_row", "summarise", "write_ledger"]

LATENCY_PARTS = ("onboard_compute_s", "wait_s", "transmit_s", "propagation_s",
                 "ground_compute_s", "return_s")


@dataclass
class LedgerRow:
    """One inference: a capture answered by one scheme."""

    scheme: str
    capture: int
    satellite: str
    t_capture_s: float
    image: int
    label: int
    prediction: int
    correct: bool
    delivered: bool
    station: str
    payload_bytes: int
    bytes_isl: float
    bytes_downlink: float
    bytes_uplink: float
    flops_onboard: float
    flops_ground: float
    energy_compute_j: float
    energy_transmit_j: float
    onboard_compute_s: float
    wait_s: float
    transmit_s: float
    propagation_s: float
    ground_compute_s: float
    return_s: float
    latency_s: float
    hops: int

    @property
    def energy_j(self) -> float:
        """On-board compute plus transmission energy."""
        return self.energy_compute_j + self.energy_transmit_j


def check_row(row: LedgerRow, tol: float = 1e-6) -> None:
    """Raise if the latency parts do not add up to the total (an accounting bug, never data)."""
    if not row.delivered:
        return
    parts = sum(getattr(row, p) for p in LATENCY_PARTS)
    if not math.isclose(parts, row.latency_s, rel_tol=tol, abs_tol=tol):
        raise AssertionError(f"ledger row {row.scheme}/{row.capture}: latency parts sum to "
                             f"{parts} s, total is {row.latency_s} s")


def summarise(rows: list[LedgerRow]) -> list[dict]:
    """Per scheme, in first-seen order: accuracy, bytes, energy and latency statistics."""
    order = list(dict.fromkeys(r.scheme for r in rows))
    table = []
    for scheme in order:
        group = [r for r in rows if r.scheme == scheme]
        done = [r for r in group if r.delivered]
        lat = np.array([r.latency_s for r in done]) if done else np.array([np.nan])

        def mean(attr: str, rows_: list[LedgerRow] = group) -> float:
            return float(np.mean([getattr(r, attr) for r in rows_])) if rows_ else float("nan")

        entry = {
            "scheme": scheme,
            "inferences": len(group),
            "delivered": len(done),
            "accuracy": float(np.mean([r.correct for r in group])),
            "payload_bytes": mean("payload_bytes"),
            "bits_per_inference": 8 * mean("payload_bytes"),
            "bytes_downlink": mean("bytes_downlink"),
            "bytes_isl": mean("bytes_isl"),
            "bytes_uplink": mean("bytes_uplink"),
            "energy_compute_j": mean("energy_compute_j"),
            "energy_transmit_j": mean("energy_transmit_j"),
            "energy_j": mean("energy_compute_j") + mean("energy_transmit_j"),
            "latency_p50_s": float(np.percentile(lat, 50)),
            "latency_p95_s": float(np.percentile(lat, 95)),
            "latency_mean_s": float(np.mean(lat)),
        }
        entry.update({f"mean_{p}": mean(p, done) for p in LATENCY_PARTS})
        table.append(entry)
    return table


def write_ledger(rows: list[LedgerRow], summary: list[dict], out: str | Path,
                 meta: dict | None = None) -> dict[str, Path]:
    """Write ``ledger.csv`` (one row per inference) and ``summary.{csv,json}`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"ledger": out / "ledger.csv", "summary_csv": out / "summary.csv",
             "summary_json": out / "summary.json"}
    names = [f.name for f in fields(LedgerRow)]
    with paths["ledger"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    if summary:
        with paths["summary_csv"].open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(summary[0]))
            writer.writeheader()
            writer.writerows(summary)
    # default=str: config values such as paths or numpy scalars are recorded as text.
    paths["summary_json"].write_text(json.dumps({**(meta or {}), "schemes": summary}, indent=2,
                                                default=str))
    return paths
