"""Per-request policies in serving (``policy:`` in a serve YAML): the schemes as options."""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest
import yaml

from research.paths import REPO_ROOT
from research.serving import experiment
from research.serving.cli import main
from research.serving.config import ServingConfigError, parse_serve_config
from research.serving.placement import default_nodes
from research.serving.policy import route_numbers
from research.serving.routing import GROUND, Network
from research.serving.simulator import SimRequest, Step, simulate

# made-up accuracies (a random encoder scores the same everywhere): distinct per scheme and sensor
ACC = {"rgb": {"served": 0.9, "float": 0.8, "jpeg": 0.7}, "ms13": {"served": 0.6, "float": 0.5}}


def _tiny(**top) -> dict:
    with open(REPO_ROOT / "experiments" / "serving" / "quick.yaml") as fh:
        raw = yaml.safe_load(fh)
    raw["orbit"]["duration_s"] = 600
    raw["workload"].update(horizon_s=600, sources=3, rate_hz=0.1)
    raw["placement"]["epoch_s"] = 300
    raw["evaluate"]["images"] = 20
    raw["model"].update(coarse_train_images=60, coarse_steps=10)
    for key, value in top.items():
        raw[key] = {**raw[key], **value} if key == "workload" else value
    return raw


def _serve(tmp, raw: dict) -> tuple[dict, list[dict], str]:
    """``satedge serve`` on ``raw`` with the :data:`ACC` accuracies in place of the measured."""
    real = experiment.evaluate_tasks

    def evaluate(*args, **kwargs):
        out = real(*args, **kwargs)
        for modality, row in out["modalities"].items():
            for key, acc in ACC[modality].items():
                if key in row:
                    row[key]["landcover_acc"] = acc
        return out

    (tmp / "tiny.yaml").write_text(yaml.safe_dump(raw))
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.setattr(experiment, "evaluate_tasks", evaluate)
        assert main(["--config", str(tmp / "tiny.yaml"), "--out", str(tmp / "out")]) == 0
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    rows = json.loads((tmp / "out" / "outcomes.json").read_text())["rows"]
    return summary, rows, printed.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three sources taking rgb and 13-band captures in turn (different request counts per
    demand): a fixed policy on two schemes, a greedy one without floor and one whose floor
    only the microservices meet on 13-band captures."""
    raw = _tiny(workload={"modality": ["rgb", "ms13"]},
                policy=[{"kind": "fixed", "option": "microservice"},
                        {"kind": "fixed", "option": "ground_raw"},
                        {"kind": "greedy", "floor": 0.0, "objective": "latency"},
                        {"kind": "greedy", "floor": 0.55, "floor_mode": "capture"}])
    return _serve(tmp_path_factory.mktemp("policy"), raw)


def _by(rows: list[dict], scheme: str) -> list[dict]:
    return [r for r in rows if r["scheme"] == scheme]


def test_a_fixed_policy_replays_its_scheme_request_for_request(run):
    summary, rows = run[:2]
    run_output = run[2]
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
    assert summary["schemes"]["microservice"]["landcover_acc"] == pytest.approx((0.9 + 0.6 + 0.9) / 3)  # rgb, ms13, rgb
    assert not any("policy:" in line or "greedy" in line for line in summary["verdict"])
    assert "policy:ground_raw chose: ground_raw 100.0%" in run_output


def test_greedy_reports_its_mix_and_the_accuracy_it_chose(run):
    summary, rows, _ = run
    g = summary["schemes"]["greedy-latency@0"]
    mine = _by(rows, "greedy-latency@0")
    chosen = [r["option"] for r in mine]
    assert g["option_mix"] == {o: chosen.count(o) / len(chosen) for o in set(chosen)}
    assert set(chosen) <= {"microservice", "onboard_shared", "ground_raw"}  # no JPEG of 13 bands
    key = {"microservice": "served", "onboard_shared": "float", "ground_raw": "float"}
    per_source: dict[str, list[float]] = {}
    for r in mine:
        per_source.setdefault(r["source"], []).append(ACC[r["modality"]][key[r["option"]]])
    want = sum(sum(v) / len(v) for v in per_source.values()) / len(per_source)
    assert g["landcover_acc"] == pytest.approx(want)
    assert g["policy"]["deadline_s"] == 300  # the workload's deadline, filled in
    assert set(g["policy"]["groups"]) == {"rgb:landcover+coarse+retrieval",
                                          "ms13:landcover+coarse+retrieval"}
    # it never waits longer on average than the slowest scheme it could have chosen
    worst = max(summary["schemes"][s]["mean_latency_s"] for s in g["option_mix"])
    assert g["mean_latency_s"] <= worst + 1e-9


def test_a_capture_floor_keeps_each_modality_to_the_options_that_meet_it(run):
    _, rows, _ = run
    mine = _by(rows, "greedy-latency@0.55,floor_mode=capture")
    assert mine
    assert {r["option"] for r in mine if r["modality"] == "ms13"} == {"microservice"}


def test_the_oracle_runs_over_the_serving_options(tmp_path):
    summary, rows, _ = _serve(tmp_path, _tiny(policy={"kind": "oracle", "floor": 0.0,
                                                   "objective": "energy"}))
    o = summary["schemes"]["oracle-energy@0"]
    assert sum(o["option_mix"].values()) == pytest.approx(1.0)
    assert len(_by(rows, "oracle-energy@0")) == o["requests"] > 0
    (group,) = o["policy"]["groups"].values()
    assert set(group["options"]) == {"microservice", "onboard_shared", "ground_raw", "ground_jpeg"}


def test_route_numbers_split_a_route_where_its_bytes_leave_the_satellite():
    src = "sat-0"
    assert route_numbers([Step(src, 5.0, 100.0), Step(src, 7.0, 3.0), Step(GROUND, 11.0, 0.0)],
                         src) == (3.0, 12.0, 11.0)
    assert route_numbers([Step(src, 5.0, 100.0), Step("sat-1", 7.0, 3.0)], src) == (100.0, 5.0,
                                                                                     7.0)
    assert route_numbers([Step(src, 0.0, 9.0), Step(GROUND, 2.0, 0.0)], src) == (9.0, 0.0, 2.0)


class _Recorder:
    """A chooser with one fixed route that records what the simulator tells it."""

    def __init__(self, route):
        self.route_, self.told = route, []

    def route(self, i, accel_free_at):
        return "custom", self.route_

    def sent(self, i, t_free):
        self.told.append((i, t_free))


def test_the_chooser_hears_when_the_bytes_leave_not_when_a_local_stage_ends(plan):
    nodes = default_nodes(plan.satellites, plan.stations)
    src = plan.satellites[0]
    req = SimRequest("r", 0, 0, src, ("landcover",), 0.0, 3600.0, 1)
    rec = _Recorder([Step(src, 1e9, 50_000.0, "embed"), Step(src, 1e9, 100.0, "encoder")])
    (o,) = simulate(Network(plan), nodes, [req], rec, "custom")
    assert math.isfinite(o.latency_s), o.reason
    assert o.option == "custom"
    ((i, t_free),) = rec.told  # once, for the transfer off the satellite
    local = 2 * nodes[src].seconds(1e9)
    assert i == 0 and local <= t_free <= o.done_s


@pytest.mark.parametrize("top, needle", [
    ({"policy": {"kind": "fixed", "option": "monolithic"}},
     r"option 'monolithic' is not one of the options"),
    ({"policy": {"kind": "greedy", "flor": 0.9}}, r"unknown key\(s\) \['flor'\]"),
    ({"policy": {"kind": "anneal"}}, r"policy.kind: unknown policy kind 'anneal'"),
    ({"policy": [{"kind": "greedy"}, {"kind": "greedy"}]}, "must be unique"),
    ({"policy": {"kind": "fixed", "option": "ground_jpeg"}, "baselines": {"image_formats": []}},
     r"'ground_jpeg' is not one of the options"),
    ({"policy": {"kind": "fixed", "option": "ground_jpeg"},
      "workload": {"modality": ["rgb", "ms13"]}}, r"'ground_jpeg' is not one of the options"),
    ({"policy": {"kind": "oracle"}, "workload": {"modality": ["rgb", "ms13"]}},
     "plans one modality at a time"),
])
def test_policy_section_errors_name_the_entry(top, needle):
    with pytest.raises(ServingConfigError, match=needle):
        parse_serve_config(_tiny(**top))


def test_a_floor_no_scheme_meets_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(_tiny(policy={"kind": "greedy", "floor": 1.0})))
    assert main(["--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "modality 'rgb'" in err and "the best reachable expected accuracy is" in err
