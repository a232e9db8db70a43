"""The per-inference ledger: one row per (scheme, capture), its summary, and its files.

Every evaluation ends here, so every figure and table is drawn from the same record, in the
vocabulary of :mod:`research.records` shared with serving and federated rows: the fraction of
the scene's sampled tiles answered right, the bytes on each link type, energy by where it is
spent (on-board compute, on-board transmit, ground) and latency split into on-board compute,
queueing (for the accelerator, a contact or a busy link), transmission, propagation, ground
compute and the return leg. The parts add up to the total by construction
(:func:`research.records.check_latency`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from research.records import LATENCY_FIELDS, check_latency, total_energy_j, write_rows

__all__ = ["LATENCY_PARTS", "LedgerRow", "check_row", "summarise", "write_ledger"]

LATENCY_PARTS = LATENCY_FIELDS


@dataclass
class LedgerRow:
    """One inference: a capture (a scene of ``tiles`` tiles) answered by one scheme.

    ``image``/``label``/``prediction`` are the scene's representative tile; ``accuracy`` is the
    fraction of its sampled real tiles answered right (0 or 1 for a one-tile capture).
    ``payload_bytes`` is what left the satellite for the whole scene. ``reason`` says why an
    undelivered row was not delivered; ``option`` is the scheme that answered it (the row's own
    scheme, or the one a per-capture policy chose). ``energy_onboard_compute_j`` prices the
    on-board FLOPs on the satellite's accelerator (dense: a spiking part runs every synapse at
    every step); ``energy_onboard_event_j`` prices the operations and spikes counted on the
    images on the scenario's event-driven profile (``nan`` when it names none).
    """

    scheme: str
    capture: int
    satellite: str
    t_capture_s: float
    tiles: int
    image: int
    label: int
    prediction: int
    accuracy: float
    delivered: bool
    station: str
    payload_bytes: float
    bytes_downlink: float
    bytes_uplink: float
    bytes_isl: float
    flops_onboard: float
    flops_ground: float
    energy_onboard_compute_j: float
    energy_onboard_transmit_j: float
    energy_ground_j: float
    onboard_compute_s: float
    queue_s: float
    transmit_s: float
    propagation_s: float
    ground_compute_s: float
    return_s: float
    latency_s: float
    hops: int
    reason: str = ""
    option: str = ""
    energy_onboard_event_j: float = float("nan")

    @property
    def energy_j(self) -> float:
        """On-board compute + on-board transmit + ground energy."""
        return total_energy_j(self)

    @property
    def energy_onboard_j(self) -> float:
        """What the satellite spends: compute plus transmission."""
        return self.energy_onboard_compute_j + self.energy_onboard_transmit_j


def check_row(row: LedgerRow, tol: float = 1e-6) -> None:
    """Raise if the latency parts do not add up to the total (an accounting bug, never data)."""
    if row.delivered:
        check_latency(row, f"ledger row {row.scheme}/{row.capture}", tol)


def summarise(rows: list[LedgerRow]) -> list[dict]:
    """Per scheme, in first-seen order: accuracy, delivery, bytes, energy and latency statistics.

    Means of bytes and energy are per capture; latency percentiles are over delivered captures
    (``nan`` when none was delivered).
    """
    order = list(dict.fromkeys(r.scheme for r in rows))
    table = []
    for scheme in order:
        group = [r for r in rows if r.scheme == scheme]
        done = [r for r in group if r.delivered]
        lat = np.array([r.latency_s for r in done]) if done else np.array([np.nan])

        def mean(attr: str, rows_: list[LedgerRow] = group) -> float:
            return float(np.mean([getattr(r, attr) for r in rows_])) if rows_ else float("nan")

        tiles = sum(r.tiles for r in group)
        entry = {
            "scheme": scheme,
            "inferences": len(group),
            "delivered": len(done),
            "delivered_fraction": len(done) / len(group),
            "accuracy": mean("accuracy"),
            "tiles": tiles,
            "payload_bytes": mean("payload_bytes"),
            "bytes_per_tile": sum(r.payload_bytes for r in group) / tiles,
            "bits_per_inference": 8 * mean("payload_bytes"),
            "bytes_downlink": mean("bytes_downlink"),
            "bytes_uplink": mean("bytes_uplink"),
            "bytes_isl": mean("bytes_isl"),
            "energy_onboard_compute_j": mean("energy_onboard_compute_j"),
            "energy_onboard_transmit_j": mean("energy_onboard_transmit_j"),
            "energy_ground_j": mean("energy_ground_j"),
            "energy_onboard_j": float(np.mean([r.energy_onboard_j for r in group])),
            "energy_j": float(np.mean([r.energy_j for r in group])),
            "latency_p50_s": float(np.percentile(lat, 50)),
            "latency_p95_s": float(np.percentile(lat, 95)),
            "latency_mean_s": float(np.mean(lat)),
        }
        if any(np.isfinite(r.energy_onboard_event_j) for r in group):
            entry["energy_onboard_event_j"] = mean("energy_onboard_event_j")
        entry.update({f"mean_{p}": mean(p, done) for p in LATENCY_PARTS})
        table.append(entry)
    return table


def write_ledger(rows: list[LedgerRow], summary: list[dict], out: str | Path,
                 meta: dict | None = None) -> dict[str, Path]:
    """Write ``ledger.{csv,json}`` (one row per inference) and ``summary.{csv,json}`` (one per
    scheme, with ``meta``) under ``out``."""
    ledger = write_rows(rows, out, "ledger")
    summary_paths = write_rows(summary, out, "summary", meta=meta, rows_key="schemes")
    return {"ledger": ledger["csv"], "ledger_json": ledger["json"],
            "summary_csv": summary_paths["csv"], "summary_json": summary_paths["json"]}
