"""Per-capture policies in scenarios: the ``policy:`` knob end to end, and the policy sweep."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from research.eval import ScenarioError, evaluate, parse_scenario
from research.eval.policy_sweep import comparisons, policy_sweep, write_policy_sweep
from research.opt import UnreachableFloorError

POLICIES = [{"kind": "greedy", "floor": 0.0},
            {"kind": "greedy", "floor": 0.0, "objective": "energy"},
            {"kind": "oracle", "floor": 0.0, "cell_s": 300},
            {"kind": "oracle", "floor": 0.0, "cell_s": 300, "objective": "latency"},
            {"kind": "fixed", "option": "jpeg"}]


@pytest.fixture
def with_policies(raw_scenario) -> dict:
    raw = copy.deepcopy(raw_scenario)
    raw["policy"] = copy.deepcopy(POLICIES)
    raw["calibration"] = {"split": "val", "limit": 20}
    return raw


def test_policy_rows_join_the_ledger_with_the_option_each_capture_used(with_policies):
    scenario = parse_scenario(with_policies, "tiny.yaml")
    result = evaluate(scenario, progress=False)
    schemes = [s.name for s in scenario.schemes]
    labels = ["greedy-latency@0", "greedy-energy@0", "oracle-energy@0,cell_s=300",
              "oracle-latency@0,cell_s=300", "policy:jpeg"]
    assert [s["scheme"] for s in result.summary] == schemes + labels
    by_scheme = {}
    for row in result.rows:
        by_scheme.setdefault(row.scheme, []).append(row)
    for name in schemes:  # a scheme's rows are answered by the scheme itself
        assert {r.option for r in by_scheme[name]} == {name}
    fixed = {name: {r.capture: r for r in by_scheme[name]} for name in schemes}
    for r in by_scheme["policy:jpeg"]:  # a fixed policy is its scheme, row for row
        twin = fixed["jpeg"][r.capture]
        assert (r.option, r.delivered, r.energy_j) == ("jpeg", twin.delivered, twin.energy_j)
        assert r.latency_s == twin.latency_s or not r.delivered
    for label in labels:
        rows = by_scheme[label]
        assert len(rows) == 12 and {r.option for r in rows} <= set(schemes)
        for r in rows:  # the chosen option's real payload and prediction, not a made-up one
            twin = fixed[r.option][r.capture]
            assert (r.payload_bytes, r.prediction) == (twin.payload_bytes, twin.prediction)
    meta = json.loads(result.paths["summary_json"].read_text())
    assert set(meta["policies"]) == set(labels)
    assert sum(meta["policies"]["oracle-energy@0,cell_s=300"]["options"].values()) == 12
    assert 0 <= meta["calibration_accuracy"]["raw"] <= 1
    bound = meta["policies"]["oracle-energy@0,cell_s=300"]["bound_energy_onboard_j"]
    fastest = meta["policies"]["oracle-latency@0,cell_s=300"]["bound_latency_mean_s"]
    assert "bound_energy_onboard_j" not in meta["policies"]["oracle-latency@0,cell_s=300"]
    for s in result.summary:  # no schedule that delivers everything beats either bound
        if s["delivered_fraction"] == 1.0:
            assert s["energy_onboard_j"] >= bound * (1 - 1e-6)
            assert s["latency_mean_s"] >= fastest * (1 - 1e-6)


def test_policy_knob_errors_name_the_problem(with_policies):
    bad = copy.deepcopy(with_policies)
    bad["policy"] = {"kind": "greedy", "objective": "speed"}
    with pytest.raises(ScenarioError, match="objective 'speed' is not one of"):
        parse_scenario(bad, "tiny.yaml")
    bad["policy"] = {"kind": "fixed", "option": "webp"}
    with pytest.raises(ScenarioError, match=r"option 'webp' is not one of the options"):
        parse_scenario(bad, "tiny.yaml")
    bad["policy"] = [{"kind": "greedy"}, {"kind": "greedy"}]
    with pytest.raises(ScenarioError, match="must be unique"):
        parse_scenario(bad, "tiny.yaml")
    bad["policy"] = {"kind": "greedy"}
    bad["calibration"] = {"split": "test"}
    with pytest.raises(ScenarioError, match="calibration.split 'test' must be 'train' or 'val'"):
        parse_scenario(bad, "tiny.yaml")


def test_an_unreachable_floor_names_the_best_reachable_accuracy(with_policies):
    with_policies["policy"] = {"kind": "greedy", "floor": 1.0}
    scenario = parse_scenario(with_policies, "tiny.yaml")
    with pytest.raises(UnreachableFloorError, match=r"best reachable expected accuracy is 0\.\d+"):
        evaluate(scenario, progress=False)


def test_policy_sweep_compares_every_policy_with_the_best_fixed_scheme(raw_scenario, tmp_path):
    raw = copy.deepcopy(raw_scenario)
    raw["captures"] = {"sensor": "demo_tile", "per_orbit": 2, "start_s": 0, "seed": 0}
    raw["calibration"] = {"limit": 20}
    scenario = parse_scenario(raw, "tiny.yaml")
    rows, meta = policy_sweep(scenario, [2, 4], [0.0], progress=False)
    kinds = {(r["per_orbit"], r["kind"]) for r in rows}
    assert kinds == {(x, k) for x in (2.0, 4.0) for k in ("fixed", "greedy", "oracle")}
    assert len(rows) == 2 * (len(scenario.schemes) + 4)
    oracle = {r["objective"]: r for r in rows if r["kind"] == "oracle" and r["per_orbit"] == 4.0}
    assert oracle["energy"]["bound_energy_onboard_j"] <= oracle["energy"]["energy_onboard_j"] * (
        1 + 1e-6)
    assert oracle["latency"]["bound_latency_mean_s"] <= oracle["latency"]["latency_mean_s"] * (
        1 + 1e-6)
    # the isolation bound: no scene sooner than alone, no schedule keeping the floor under it
    assert all(r["isolation_violations"] == 0 for r in rows)
    for load in (2.0, 4.0):
        here = [r for r in rows if r["per_orbit"] == load]
        (bound,) = {r["isolation_bound_p95_s"] for r in here if r["kind"] == "greedy"}
        (median,) = {r["isolation_bound_p50_s"] for r in here if r["kind"] == "greedy"}
        assert 0 < median <= bound and math.isfinite(median)
        for r in here:  # (floor 0: every fixed scheme keeps it)
            if r["kind"] == "fixed":
                assert r["isolation_p95_s"] <= r["latency_p95_all_s"] + 1e-6
            if r["kind"] in ("fixed", "greedy") and r["expected_accuracy"] >= 0.0:
                assert r["latency_p95_all_s"] >= bound - 1e-6
                assert r["latency_p50_all_s"] >= median - 1e-6
    c = meta["comparisons"][-1]
    assert c["greedy_p50_over_isolation"] >= -1e-9
    best = next(r for r in rows if r["per_orbit"] == 4.0 and r["policy"] == c["best_fixed_latency"])
    assert c["best_fixed_isolation_p95_s"] == best["isolation_p95_s"]
    assert c["isolation_bound_p95_s"] == bound  # the last load's
    assert c["oracle_latency_p95_s"] == oracle["latency"]["latency_p95_all_s"]
    assert c["oracle_energy_energy_j"] == oracle["energy"]["energy_onboard_j"]
    assert [c["per_orbit"] for c in meta["comparisons"]] == [2.0, 4.0]
    assert meta["comparisons"] == comparisons(rows)
    paths = write_policy_sweep(rows, meta, tmp_path)
    assert {"csv", "json", "png", "pdf"} <= set(paths)
    with pytest.raises(ScenarioError, match=r"floors \[1\.0\] cannot be met"):
        policy_sweep(scenario, [2], [1.0], progress=False)


def test_comparisons_pick_the_best_fixed_scheme_meeting_the_floor():
    def row(policy, kind, acc, p95, energy, floor=None, objective="", **extra):
        return {"per_orbit": 1.0, "floor": floor, "policy": policy, "kind": kind,
                "objective": objective, "expected_accuracy": acc, "latency_p95_all_s": p95,
                "latency_mean_s": p95 / 2, "energy_onboard_j": energy,
                "delivered_fraction": 1.0, "accuracy": acc, **extra}

    rows = [row("fast", "fixed", 0.90, 10.0, 1.0), row("good", "fixed", 0.96, 100.0, 5.0),
            row("slow", "fixed", 0.97, math.inf, 2.0),
            row("g", "greedy", 0.95, 40.0, 9.0, 0.95, "latency"),
            row("e", "greedy", 0.95, 80.0, 4.0, 0.95, "energy"),
            row("ol", "oracle", 0.95, 32.0, 7.0, 0.95, "latency", bound_latency_mean_s=10.0,
                bound_delivered_fraction=1.0),
            row("oe", "oracle", 0.95, 90.0, 2.0, 0.95, "energy", bound_energy_onboard_j=1.0,
                bound_delivered_fraction=1.0)]
    (c,) = comparisons(rows)
    assert (c["best_fixed_latency"], c["best_fixed_energy"]) == ("good", "slow")
    assert c["greedy_p95_reduction"] == pytest.approx(0.6)
    assert c["greedy_energy_reduction"] == pytest.approx(-1.0)
    # each greedy against the offline schedule and the bound of its own objective
    assert c["greedy_p95_over_oracle"] == pytest.approx(40.0 / 32.0 - 1)
    assert c["oracle_p95_reduction"] == pytest.approx(1 - 32.0 / 100.0)
    assert c["greedy_mean_over_bound"] == pytest.approx(20.0 / 10.0 - 1)
    assert c["greedy_energy_over_oracle"] == pytest.approx(4.0 / 2.0 - 1)
    assert c["greedy_energy_over_bound"] == pytest.approx(4.0 / 1.0 - 1)


def test_an_image_limit_samples_every_class_not_the_first_ones():
    import numpy as np
    import torch

    from research.eval.evaluate import random_subset

    labels = torch.arange(10).repeat_interleave(100)  # recorded splits list classes together
    images = torch.arange(1000)
    some, some_labels = random_subset(images, labels, 100)
    assert len(some) == 100 and (np.bincount(some_labels.numpy(), minlength=10) > 0).all()
    assert (torch.diff(some) > 0).all()  # split order kept
    again, _ = random_subset(images, labels, 100)
    assert torch.equal(some, again)
    assert random_subset(images, labels, None)[0] is images


def test_only_an_offline_policy_sees_the_workload(with_policies, monkeypatch):
    from research.opt import GreedyPolicy, OraclePolicy

    seen = {}
    for cls in (GreedyPolicy, OraclePolicy):
        original = cls.prepare

        def spy(self, ctx, original=original, cls=cls):
            seen[cls.kind] = len(ctx.captures)
            return original(self, ctx)

        monkeypatch.setattr(cls, "prepare", spy)
    evaluate(parse_scenario(with_policies, "tiny.yaml"), progress=False)
    assert seen == {"greedy": 0, "oracle": 12}  # (each oracle is given all 12)


def test_a_scene_alone_takes_its_isolated_latency_and_never_less_among_others(scenario):
    from research.eval.evaluate import (
        captures_for,
        isolation_latencies,
        run_policies,
        run_schemes,
        test_images,
    )

    plan = scenario.orbit.build()
    images, labels = test_images(scenario)
    captures = captures_for(scenario, plan, len(images))
    outputs, _ = run_schemes(scenario, images, False)
    position = {i: i for i in range(len(images))}
    isolated = isolation_latencies(outputs, captures, position, plan, scenario.network, scenario)
    assert isolated.shape == (12, len(outputs)) and np.isfinite(isolated).any()
    for o, name in enumerate(outputs):
        spec = [{"kind": "fixed", "option": name}]
        for c in (0, 5):  # each capture alone on the network: exactly its isolated latency
            (alone,), _ = run_policies(scenario, outputs, captures[c:c + 1], labels.numpy(),
                                       position, plan, scenario.network, spec)
            assert (alone.latency_s == pytest.approx(isolated[c, o], abs=1e-6) if alone.delivered
                    else isolated[c, o] == math.inf)
        together, _ = run_policies(scenario, outputs, captures, labels.numpy(), position, plan,
                                   scenario.network, spec)
        assert all(r.latency_s >= isolated[c, o] - 1e-6
                   for c, r in enumerate(together) if r.delivered)


def test_isolation_violations_count_scenes_sooner_than_alone():
    from types import SimpleNamespace

    from research.eval.policy_sweep import isolation_violations

    isolated = np.array([[10.0, 20.0], [5.0, 1.0], [3.0, 3.0]])
    ledger = [SimpleNamespace(delivered=True, latency_s=19.0, option="b"),  # 1 s sooner than alone
              SimpleNamespace(delivered=True, latency_s=5.0, option="a"),
              SimpleNamespace(delivered=False, latency_s=math.nan, option="a")]
    assert isolation_violations(ledger, isolated, ["a", "b"]) == 1
    ledger[0].latency_s = 19.995  # within a propagation step's slack
    assert isolation_violations(ledger, isolated, ["a", "b"]) == 0


def test_relay_reach_resolves_auto_on_the_plan_and_is_zero_without_isls():
    from research.eval.policy_sweep import relay_reach
    from research.orbit.isl import KIND_GROUND, KIND_INTRA
    from tests.orbit.toy import toy_plan

    isl = [(0.0, 10_000.0)]
    chain = toy_plan({(2, 3, KIND_GROUND): [(0.0, 10_000.0)], (0, 1, KIND_INTRA): isl,
                      (1, 2, KIND_INTRA): isl}, n_sat=3, n_gs=1)
    assert relay_reach(chain, "auto") == 2 and relay_reach(chain, 1) == 1
    alone = toy_plan({(0, 1, KIND_GROUND): [(0.0, 100.0)]}, n_sat=1, n_gs=1)
    assert relay_reach(alone, "auto") == 0 and relay_reach(alone, 3) == 0
