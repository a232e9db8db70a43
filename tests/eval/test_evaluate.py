"""The per-inference ledger: consistent sums, real payload bytes, same images for every scheme."""

from __future__ import annotations

import csv
import json
import math

import pytest

from research.eval import LATENCY_PARTS, ScenarioError, evaluate, parse_scenario
from research.eval.schemes import ANSWER_BYTES
from research.models.presets import get_preset


def _evaluate(scenario):
    return evaluate(scenario, progress=False)


def test_ledger_parts_add_up_and_bytes_match_payloads(scenario):
    res = _evaluate(scenario)
    preset = get_preset("satvit_tiny")
    tokens = (preset.img_size // preset.patch_size) ** 2
    by_scheme = {}
    for row in res.rows:
        by_scheme.setdefault(row.scheme, []).append(row)
        if row.delivered:
            assert sum(getattr(row, p) for p in LATENCY_PARTS) == pytest.approx(row.latency_s)
            assert row.bytes_downlink == row.payload_bytes  # no ISLs: one downlink hop
            assert row.energy_onboard_transmit_j > 0
    assert {len(v) for v in by_scheme.values()} == {12}
    # Every scheme answers the same captures with the same images.
    keys = {s: [(r.capture, r.satellite, r.image, r.label) for r in rows]
            for s, rows in by_scheme.items()}
    assert len({tuple(v) for v in keys.values()}) == 1
    identity = by_scheme["split-identity"][0]
    assert identity.payload_bytes > 4 * tokens * preset.embed_dim  # float32 tokens + header
    assert all(r.payload_bytes == 3 * 64 * 64 for r in by_scheme["raw"])
    assert all(r.payload_bytes == ANSWER_BYTES for r in by_scheme["onboard"])
    assert all(r.flops_ground == 0 and r.flops_onboard > 0 for r in by_scheme["onboard"])
    assert all(r.flops_onboard == 0 for r in by_scheme["raw"])
    # The identity split computes exactly what the unsplit model on the raw image computes.
    preds = {s: [r.prediction for r in rows] for s, rows in by_scheme.items()}
    assert preds["split-identity"] == preds["raw"] == preds["onboard"]
    # Without ISLs, answers wait for a ground contact.
    assert max(r.queue_s for r in res.rows if r.delivered) > 10


def test_files_and_summary(scenario):
    res = _evaluate(scenario)
    with open(res.paths["ledger"]) as f:
        assert len(list(csv.DictReader(f))) == len(res.rows)
    summary = json.loads(res.paths["summary_json"].read_text())
    assert [s["scheme"] for s in summary["schemes"]] == [s.name for s in scenario.schemes]
    raw = next(s for s in summary["schemes"] if s["scheme"] == "raw")
    assert raw["bits_per_inference"] == 8 * 3 * 64 * 64
    assert summary["test_images"] == 30


def test_head_on_satellite_returns_features(raw_scenario):
    raw_scenario["model"]["head_placement"] = "satellite"
    raw_scenario["schemes"] = raw_scenario["schemes"][:1]
    raw_scenario["captures"].update(count=8, interval_s=60)
    res = _evaluate(parse_scenario(raw_scenario))
    dim = get_preset("satvit_tiny").embed_dim
    delivered = [r for r in res.rows if r.delivered]
    assert delivered
    for row in delivered:
        assert row.return_s > 0
        assert row.bytes_uplink == 4 * dim
        assert row.bytes_downlink == row.payload_bytes + ANSWER_BYTES


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(schemez=[]), "unknown key 'schemez'.*did you mean 'schemes'"),
        (lambda r: r["schemes"].append({"kind": "telepathy"}), "kind 'telepathy'"),
        (lambda r: r["schemes"].append({"name": "x", "kind": "split", "link": "zip"}),
         "link 'zip'"),
        (lambda r: r["schemes"].append({"name": "raw", "kind": "onboard"}), "unique"),
        (lambda r: r["schemes"].append({"name": "q", "kind": "image", "format": "jpeg",
                                        "quality": 0}), "quality"),
        (lambda r: r["model"].update(head_placement="moon"), "head_placement"),
        (lambda r: r["profiles"].update(satellite="tpu"), "unknown device profile 'tpu'"),
        (lambda r: r["captures"].update(count="many"), "count must be int"),
        (lambda r: r["orbit"].update(duration_s=-1), "orbit"),
    ],
)
def test_bad_scenarios_name_the_problem(raw_scenario, edit, message):
    edit(raw_scenario)
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(raw_scenario, "tiny.yaml")


def test_workload_beyond_the_horizon_is_refused(raw_scenario):
    raw_scenario["captures"].update(count=100, interval_s=600)
    with pytest.raises(ScenarioError, match="beyond the orbit horizon"):
        _evaluate(parse_scenario(raw_scenario))


def test_unreachable_answers_are_reported_not_dropped(raw_scenario):
    raw_scenario["orbit"]["stations"] = {"names": ["Kiruna"]}  # never seen from 53 degrees
    raw_scenario["schemes"] = [{"name": "raw", "kind": "image"}]
    raw_scenario["captures"]["count"] = 3
    res = _evaluate(parse_scenario(raw_scenario))
    assert len(res.rows) == 3 and not any(r.delivered for r in res.rows)
    assert all(math.isnan(r.latency_s) for r in res.rows)
    assert res.summary[0]["delivered"] == 0


def test_missing_checkpoints_are_named_before_anything_runs(raw_scenario):
    raw_scenario["model"]["checkpoint"] = "checkpoints/nope.ckpt"
    with pytest.raises(ScenarioError, match="model.checkpoint 'checkpoints/nope.ckpt' does not"):
        parse_scenario(raw_scenario, "tiny.yaml")
