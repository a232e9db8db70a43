"""The shared ledger vocabulary: one writer (CSV + JSON with meta), the latency check, energy."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass

import pytest

from research.records import (
    BYTES_FIELDS,
    ENERGY_FIELDS,
    LATENCY_FIELDS,
    check_latency,
    total_energy_j,
    write_rows,
)


def _row(**kw) -> dict:
    row = {"scheme": "x", **dict.fromkeys(BYTES_FIELDS, 10.0), **dict.fromkeys(ENERGY_FIELDS, 1.0),
           **dict.fromkeys(LATENCY_FIELDS, 0.5), "latency_s": 0.5 * len(LATENCY_FIELDS)}
    row.update(kw)
    return row


@dataclass
class _Row:
    scheme: str
    latency_s: float
    onboard_compute_s: float = 1.0
    queue_s: float = 2.0
    energy_onboard_compute_j: float = 0.25
    energy_ground_j: float = 4.0


def test_vocabulary_names_are_distinct_and_labelled():
    names = [*BYTES_FIELDS, *ENERGY_FIELDS, *LATENCY_FIELDS]
    assert len(set(names)) == len(names)
    assert all(f.startswith("bytes_") for f in BYTES_FIELDS)
    assert all(f.startswith("energy_") and f.endswith("_j") for f in ENERGY_FIELDS)
    assert all(f.endswith("_s") for f in LATENCY_FIELDS)


def test_write_rows_round_trip_csv_and_json(tmp_path):
    rows = [_row(scheme="a"), _row(scheme="b", extra=3)]
    meta = {"config": {"name": "t", "path": tmp_path}, "note": "hello"}
    paths = write_rows(rows, tmp_path / "out", "ledger", meta=meta)
    assert paths == {"csv": tmp_path / "out" / "ledger.csv",
                     "json": tmp_path / "out" / "ledger.json"}
    with paths["csv"].open() as fh:
        back = list(csv.DictReader(fh))
    assert list(back[0]) == [*rows[0], "extra"]  # first-seen key order, union of keys
    assert [r["scheme"] for r in back] == ["a", "b"]
    assert float(back[1]["bytes_downlink"]) == 10.0 and back[0]["extra"] == ""
    doc = json.loads(paths["json"].read_text())
    assert doc["rows"] == rows
    assert doc["note"] == "hello" and doc["config"]["path"] == str(tmp_path)  # default=str


def test_write_rows_takes_dataclasses(tmp_path):
    paths = write_rows([_Row("a", 3.0)], tmp_path, "dc")
    doc = json.loads(paths["json"].read_text())
    assert doc == {"rows": [{"scheme": "a", "latency_s": 3.0, "onboard_compute_s": 1.0,
                             "queue_s": 2.0, "energy_onboard_compute_j": 0.25,
                             "energy_ground_j": 4.0}]}
    with pytest.raises(TypeError, match="dataclass or a mapping"):
        write_rows([("not", "a", "row")], tmp_path)


def test_check_latency_raises_on_a_wrong_sum():
    check_latency(_row())
    check_latency(_Row("a", 3.0))
    with pytest.raises(AssertionError, match="request 7: latency parts sum to"):
        check_latency(_row(queue_s=1.5), "request 7")
    with pytest.raises(AssertionError):
        check_latency(_Row("a", 3.5))
    check_latency(_row(latency_s=math.inf, queue_s=99.0))  # undelivered rows are not checked
    check_latency(_row(latency_s=math.nan))


def test_total_energy_sums_every_place():
    assert total_energy_j(_row()) == pytest.approx(3.0)
    assert total_energy_j({"energy_ground_j": 2.0, "energy_j": 100.0}) == pytest.approx(2.0)
    assert total_energy_j(_Row("a", 3.0)) == pytest.approx(4.25)
