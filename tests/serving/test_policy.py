"""Per-request policies in serving (``policy:`` in a serve YAML): the schemes as options."""

from __future__ import annotations

import json

import pytest
import yaml

from research.paths import REPO_ROOT
from research.serving.cli import main
from research.serving.config import ServingConfigError, parse_serve_config


def _tiny(**policy) -> dict:
    with open(REPO_ROOT / "experiments" / "serving" / "quick.yaml") as fh:
        raw = yaml.safe_load(fh)
    raw["orbit"]["duration_s"] = 600
    raw["workload"].update(horizon_s=600, sources=3, rate_hz=0.1)
    raw["placement"]["epoch_s"] = 300
    raw["evaluate"]["images"] = 20
    raw["model"].update(coarse_train_images=60, coarse_steps=10)
    raw.update(policy)
    return raw


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny serving run with a fixed policy on each of two schemes, a greedy one and the
    offline oracle (which reads the whole workload)."""
    tmp = tmp_path_factory.mktemp("policy")
    raw = _tiny(policy=[{"kind": "fixed", "option": "microservice"},
                        {"kind": "fixed", "option": "ground_raw"},
                        {"kind": "greedy", "floor": 0.0, "objective": "latency"},
                        {"kind": "oracle", "floor": 0.0, "objective": "energy"}])
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(raw))
    assert main(["--config", str(tmp / "tiny.yaml"), "--out", str(tmp / "out")]) == 0
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    rows = json.loads((tmp / "out" / "outcomes.json").read_text())["rows"]
    return summary, rows


def _by(rows: list[dict], scheme: str) -> list[dict]:
    return [r for r in rows if r["scheme"] == scheme]


def test_a_fixed_policy_replays_its_scheme_request_for_request(run):
    summary, rows = run
    assert {"policy:microservice", "policy:ground_raw", "greedy-latency@0"} <= set(
        summary["schemes"])
    for scheme in ("microservice", "ground_raw"):
        mine, theirs = _by(rows, f"policy:{scheme}"), _by(rows, scheme)
        assert mine and len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            assert a["option"] == scheme and a["request_id"] == b["request_id"]
            assert a["latency_s"] == b["latency_s"] and a["path"] == b["path"]
            assert a["bytes_downlink"] == b["bytes_downlink"]
        s, base = summary["schemes"][f"policy:{scheme}"], summary["schemes"][scheme]
        assert s["option_mix"] == {scheme: 1.0}
        assert s["landcover_acc"] == pytest.approx(base["landcover_acc"])
        assert s["onboard_memory_bytes"] == base["onboard_memory_bytes"]


def test_greedy_reports_its_mix_and_the_accuracy_it_chose(run):
    summary, rows = run
    g = summary["schemes"]["greedy-latency@0"]
    assert sum(g["option_mix"].values()) == pytest.approx(1.0)
    assert set(g["option_mix"]) <= {"microservice", "onboard_shared", "ground_raw", "ground_jpeg"}
    acc = {s: summary["schemes"][s]["landcover_acc"] for s in g["option_mix"]}
    assert g["landcover_acc"] == pytest.approx(sum(acc[s] * f for s, f in g["option_mix"].items()))
    assert g["policy"]["deadline_s"] == 300  # the workload's deadline, filled in
    chosen = {r["option"] for r in _by(rows, "greedy-latency@0")}
    assert chosen == set(g["option_mix"])
    # it never waits longer than the slowest fixed scheme it could have chosen
    worst = max(summary["schemes"][s]["mean_latency_s"] for s in acc)
    assert g["mean_latency_s"] <= worst + 1e-9


@pytest.mark.parametrize("policy, needle", [
    ({"kind": "fixed", "option": "monolithic"}, r"option 'monolithic' is not one of the options"),
    ({"kind": "greedy", "flor": 0.9}, r"unknown key\(s\) \['flor'\]"),
    ({"kind": "anneal"}, r"policy.kind: unknown policy kind 'anneal'"),
    ([{"kind": "greedy"}, {"kind": "greedy"}], "must be unique"),
])
def test_policy_section_errors_name_the_entry(policy, needle):
    with pytest.raises(ServingConfigError, match=needle):
        parse_serve_config(_tiny(policy=policy))


def test_jpeg_is_an_option_only_when_measured():
    cfg = parse_serve_config(_tiny(policy={"kind": "fixed", "option": "ground_jpeg"}))
    assert cfg.policies == [{"kind": "fixed", "option": "ground_jpeg"}]
    raw = _tiny(policy={"kind": "fixed", "option": "ground_jpeg"})
    raw["baselines"] = {"image_formats": []}
    with pytest.raises(ServingConfigError, match="ground_jpeg"):
        parse_serve_config(raw)


def test_a_floor_no_scheme_meets_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(_tiny(policy={"kind": "greedy", "floor": 1.0})))
    assert main(["--config", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "the best reachable expected accuracy is" in capsys.readouterr().err


def test_the_oracle_runs_over_the_serving_options(run):
    summary, rows = run
    o = summary["schemes"]["oracle-energy@0"]
    assert sum(o["option_mix"].values()) == pytest.approx(1.0)
    assert len(_by(rows, "oracle-energy@0")) == o["requests"] > 0
    # minimising on-board energy with no floor: it never pays for the encoder on board
    assert "onboard_shared" not in o["option_mix"]
