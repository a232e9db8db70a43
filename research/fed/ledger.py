"""Round ledger: critical-path time split, bytes per link type, energy per satellite.

Each satellite's work in a round is a :class:`Track` (its clock plus how the time since the round
started was spent). At a synchronisation point the latest track wins, so the parts of a round's
row always add up to ``t_end - t_start``: they are the critical path, not a sum over satellites.

Rows use the shared vocabulary of :mod:`research.records` (latency parts, bytes per link type,
energy by where it is spent); ``latency_s`` is the round's duration, so
:func:`research.records.check_latency` holds for every row. Written by
:func:`research.records.write_rows`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from research.orbit.routing import TransferResult
from research.records import LATENCY_FIELDS, check_latency

TIME_PARTS = LATENCY_FIELDS
"""Parts of a track's time (``return_s`` stays 0: a round ends when the new head exists)."""
LINK_TYPES = ("isl_intra", "isl_inter", "downlink", "uplink")
_KIND = {"isl-intra": "isl_intra", "isl-inter": "isl_inter", "isl-nearest": "isl_inter"}


@dataclass(frozen=True)
class Track:
    """A clock and the split of the time it has advanced by (immutable: branches are cheap)."""

    t: float
    parts: tuple[float, ...] = (0.0,) * len(TIME_PARTS)

    def add(self, part: str, dt: float) -> Track:
        if part not in TIME_PARTS:
            raise ValueError(f"unknown time part {part!r}; one of {TIME_PARTS}")
        p = list(self.parts)
        p[TIME_PARTS.index(part)] += dt
        return Track(self.t + dt, tuple(p))

    def after(self, res: TransferResult) -> Track:
        """The clock after a transfer that was asked for at or after ``self.t``."""
        wait = res.t_arrival - self.t - res.transmit_s - res.propagation_s
        p = list(self.parts)
        for name, v in (("queue_s", wait), ("transmit_s", res.transmit_s),
                        ("propagation_s", res.propagation_s)):
            p[TIME_PARTS.index(name)] += v
        return Track(res.t_arrival, tuple(p))

    def wait_until(self, t: float) -> Track:
        return self.add("queue_s", t - self.t) if t > self.t else self

    def as_dict(self) -> dict[str, float]:
        return dict(zip(TIME_PARTS, self.parts, strict=True))


def latest(tracks: list[Track]) -> Track:
    """The track that finishes last (the critical path of a synchronisation)."""
    return max(tracks, key=lambda tr: tr.t)


def link_type(kind: str, src_is_station: bool) -> str:
    """Ledger link type of a hop kind from the orbit package."""
    if kind == "ground":
        return "uplink" if src_is_station else "downlink"
    return _KIND[kind]


@dataclass
class Accounting:
    """Bytes per link type, energy per satellite and ground energy booked during one round.

    ``ground_j``: ground compute. Hops sent by stations (uplink) count their bytes but no energy
    (their transmitter is not on board), as in eval and serving.
    """

    bytes: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LINK_TYPES, 0.0))
    compute_j: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    transmit_j: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    ground_j: float = 0.0
    exchanged_bytes: float = 0.0

    def book_transfer(self, res: TransferResult, stations: set[str]) -> None:
        for hop in res.hops:
            self.bytes[link_type(hop.kind, hop.src in stations)] += res.n_bytes
            if hop.src not in stations:
                self.transmit_j[hop.src] += hop.energy_j

    def book(self, link: str, n_bytes: float, sat: str | None = None, energy_j: float = 0.0
             ) -> None:
        self.bytes[link] += n_bytes
        if sat is not None:
            self.transmit_j[sat] += energy_j

    def merge(self, other: Accounting) -> None:
        """Add ``other``'s bytes and energy (its compute excepted) to this one."""
        for k, v in other.bytes.items():
            self.bytes[k] = self.bytes.get(k, 0.0) + v
        for k, v in other.transmit_j.items():
            self.transmit_j[k] += v
        self.ground_j += other.ground_j
        self.exchanged_bytes += other.exchanged_bytes


def round_row(*, round_idx: int, scheme: str, start: Track, end: Track, acct: Accounting,
              accuracy: float, participants: list[str], dropped: dict[str, str],
              aggregation: str) -> dict:
    """One ledger row (flat, CSV-able), in the :mod:`research.records` vocabulary.

    ``bytes_isl`` is ``bytes_isl_intra + bytes_isl_inter`` (both kept as finer columns).
    """
    b = acct.bytes
    row: dict = {"round": round_idx, "scheme": scheme, "t_start_s": start.t, "t_end_s": end.t,
                 "duration_s": end.t - start.t, "latency_s": end.t - start.t,
                 "aggregation": aggregation}
    row.update(end.as_dict())
    row.update({"bytes_downlink": b["downlink"], "bytes_uplink": b["uplink"],
                "bytes_isl": b["isl_intra"] + b["isl_inter"],
                "bytes_isl_intra": b["isl_intra"], "bytes_isl_inter": b["isl_inter"]})
    row["bytes_model_exchange"] = acct.exchanged_bytes
    row["energy_onboard_compute_j"] = math.fsum(acct.compute_j.values())  # order-free sums
    row["energy_onboard_transmit_j"] = math.fsum(acct.transmit_j.values())
    row["energy_ground_j"] = float(acct.ground_j)
    row["accuracy"] = accuracy
    row["participants"] = len(participants)
    row["dropped"] = len(dropped)
    row["dropped_ids"] = ";".join(f"{k}:{v}" for k, v in sorted(dropped.items()))
    check_latency(row, f"{scheme} round {round_idx}")
    return row


def summarize(rows: list[dict], energy: dict[str, list[float]], initial_accuracy: float) -> dict:
    """Headline numbers of a run: final accuracy, simulated hours, bytes and energy totals.

    Energy totals use the :mod:`research.records` names (on-board compute and transmit summed
    over satellites, ground summed over rounds; exactly rounded sums, so the totals do not depend
    on the order satellites appear in, which a hash seed may change); ``bytes`` maps each ``bytes_<link>`` column
    of the rows to its total.
    """
    last = rows[-1] if rows else {}
    return {
        "rounds": len(rows),
        "initial_accuracy": initial_accuracy,
        "final_accuracy": last.get("accuracy", initial_accuracy),
        "sim_hours": last.get("t_end_s", 0.0) / 3600,
        "bytes": {k[6:]: sum(r[k] for r in rows) for k in (last or {}) if k.startswith("bytes_")},
        "energy_onboard_compute_j": math.fsum(e[0] for e in energy.values()),
        "energy_onboard_transmit_j": math.fsum(e[1] for e in energy.values()),
        "energy_ground_j": math.fsum(r["energy_ground_j"] for r in rows),
        "energy_per_satellite_j": energy,
        "dropped_total": sum(r["dropped"] for r in rows),
    }
