"""Per-round rows speak the shared ledger vocabulary (:mod:`research.records`) and are written by
its one writer."""

from __future__ import annotations

import csv
import json

import pytest

from research.fed.config import parse_config
from research.fed.ledger import Accounting, Track, round_row
from research.fed.runner import run
from research.orbit.routing import Hop, TransferResult
from research.records import BYTES_FIELDS, ENERGY_FIELDS, LATENCY_FIELDS, check_latency
from tests.fed.conftest import tiny_raw

VOCABULARY = (*BYTES_FIELDS, *ENERGY_FIELDS, *LATENCY_FIELDS, "latency_s")
OLD_NAMES = ("time_wait_s", "time_compute_sat_s", "time_compute_ground_s", "time_transmit_s",
             "energy_sat_compute_j", "energy_sat_transmit_j")


def _hop(src, dst, kind, energy):
    return Hop(src, dst, kind, 0.0, 0.0, 1.0, 1.1, 0.0, 1.0, 0.1, energy)


def test_round_row_vocabulary_and_energy_by_place():
    acct = Accounting()
    res = TransferResult(104.2, ["g", "s1", "s2", "g"], 7.0, 101.0, 100.0, 1.0, 2.0, 0.2,
                         [_hop("g", "s1", "ground", 4.0), _hop("s1", "s2", "isl-intra", 1.0),
                          _hop("s2", "g", "ground", 2.0)])
    acct.book_transfer(res, {"g"})
    acct.book("isl_inter", 50.0, "s2", 0.5)
    acct.compute_j["s1"] += 3.0
    acct.ground_j += 10.0  # ground compute
    start = Track(100.0)
    end = start.add("onboard_compute_s", 1.0).after(res)  # t = 104.2, 1 s of it queueing
    end = end.add("ground_compute_s", 2.0).wait_until(110.0)
    end = end.add("transmit_s", 0.5).add("propagation_s", 0.25)
    row = round_row(round_idx=1, scheme="collaborative", start=start, end=end, acct=acct,
                    accuracy=0.5, participants=["s1", "s2"], dropped={}, aggregation="ring")
    assert set(VOCABULARY) <= set(row), set(VOCABULARY) - set(row)
    assert not set(OLD_NAMES) & set(row)
    check_latency(row)
    assert row["latency_s"] == row["duration_s"] == pytest.approx(10.75)
    assert row["queue_s"] == pytest.approx(1.0 + 3.8) and row["return_s"] == 0.0
    assert row["transmit_s"] == pytest.approx(2.5) and row["propagation_s"] == pytest.approx(0.45)
    assert row["bytes_uplink"] == 100.0 and row["bytes_downlink"] == 100.0
    assert row["bytes_isl_intra"] == 100.0 and row["bytes_isl_inter"] == 50.0
    assert row["bytes_isl"] == 150.0
    assert row["energy_onboard_compute_j"] == 3.0
    assert row["energy_onboard_transmit_j"] == pytest.approx(1.0 + 2.0 + 0.5)
    assert row["energy_ground_j"] == pytest.approx(10.0)  # ground compute; station uplink: none


def test_track_after_books_queue_transmit_propagation():
    res = TransferResult(10.0, ["a", "b"], 0.0, 2.0, 1.0, 5.0, 2.5, 0.5, [])
    tr = Track(2.0).after(res)
    parts = tr.as_dict()
    assert tuple(parts) == LATENCY_FIELDS
    assert parts["queue_s"] == pytest.approx(5.0) and parts["transmit_s"] == 2.5
    assert parts["propagation_s"] == 0.5 and tr.t == 10.0


@pytest.mark.parametrize("scheme", ["collaborative", "onboard"])
def test_run_rows_and_ledger_files(tiny_setup, tmp_path, scheme):
    cfg = parse_config(tiny_raw(out_dir=str(tmp_path), scheme=scheme, train={"rounds": 1}))
    res = run(cfg, setup=tiny_setup)
    assert res.rows
    for r in res.rows:
        assert set(VOCABULARY) <= set(r), set(VOCABULARY) - set(r)
        assert not set(OLD_NAMES) & set(r)
        check_latency(r, f"{scheme} round {r['round']}")
        assert r["latency_s"] == pytest.approx(r["duration_s"])
        assert r["bytes_isl"] == pytest.approx(r["bytes_isl_intra"] + r["bytes_isl_inter"])
        assert r["energy_onboard_compute_j"] > 0 and r["energy_onboard_transmit_j"] > 0
        if scheme == "collaborative":  # the encoder runs on the ground
            assert r["ground_compute_s"] > 0 and r["energy_ground_j"] > 0
        else:
            assert r["ground_compute_s"] == 0.0
    with (tmp_path / "ledger.csv").open() as fh:
        header = next(csv.reader(fh))
    assert set(VOCABULARY) <= set(header)
    doc = json.loads((tmp_path / "ledger.json").read_text())
    assert doc["rows"] == json.loads(json.dumps(res.rows))
    assert doc["config"]["scheme"] == scheme


def test_energy_totals_do_not_depend_on_the_order_satellites_appear_in():
    """A hash seed changes set order; the totals must not move in the last bit."""
    from research.fed.ledger import summarize

    values = {"a": [1e16, 0.1], "b": [1.0, 1e16], "c": [-1e16, 0.3], "d": [1.0, -1e16]}
    rows = [{"energy_ground_j": 0.0, "dropped": 0}]
    totals = {(s := summarize(rows, dict(order), 0.0))["energy_onboard_compute_j"]:
              s["energy_onboard_transmit_j"]
              for order in (values.items(), reversed(values.items()),
                            sorted(values.items(), key=lambda kv: kv[1][0]))}
    assert totals == {2.0: 0.4}
