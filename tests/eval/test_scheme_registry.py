"""Evaluation schemes are classes registered by kind; the scenario and the evaluation call their
hooks, so a new scheme is one class."""

from __future__ import annotations

import numpy as np
import pytest

from research.eval import ScenarioError, evaluate, parse_scenario
from research.eval import schemes as schemes_module
from research.eval.scenario import SchemeSpec
from research.eval.schemes import (
    ANSWER_BYTES,
    EvalScheme,
    ImageScheme,
    OnboardScheme,
    SplitScheme,
    build_scheme,
    eval_scheme_class,
    list_eval_schemes,
    register_eval_scheme,
)


def test_the_built_in_kinds_are_registered():
    assert list_eval_schemes() == ["image", "onboard", "split"]
    for kind, cls in (("split", SplitScheme), ("image", ImageScheme), ("onboard", OnboardScheme)):
        assert eval_scheme_class(kind) is cls and cls.kind == kind


def test_an_unknown_kind_names_itself_and_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown evaluation scheme kind 'telepathy'; expected "
                                         r"one of \['image', 'onboard', 'split'\]"):
        build_scheme(SchemeSpec(name="x", kind="telepathy"), classifier=None)


def test_a_new_scheme_is_one_registered_class(raw_scenario):
    @register_eval_scheme("constant")
    class ConstantScheme(EvalScheme):
        """Answers class 0 on board without looking (a toy)."""

        @classmethod
        def check_entry(cls, entry, where):
            if entry.get("quality", 75) != 75:
                raise ValueError(f"{where}.quality means nothing to a constant answer")

        def predict_batch(self, images):
            return np.zeros(len(images), dtype=np.int64), [ANSWER_BYTES] * len(images)

        def costs(self, one):
            return 0.0, 0.0, 0, 0.0, 0

    try:
        raw_scenario["schemes"] = [{"name": "zero", "kind": "constant"}]
        raw_scenario["captures"]["count"] = 4
        scenario = parse_scenario(raw_scenario, "tiny.yaml")
        assert scenario.schemes == [SchemeSpec(name="zero", kind="constant")]
        res = evaluate(scenario, progress=False)
        assert len(res.rows) == 4 and {r.prediction for r in res.rows} == {0}
        assert {r.payload_bytes for r in res.rows} == {ANSWER_BYTES}
        raw_scenario["schemes"][0]["quality"] = 10
        with pytest.raises(ScenarioError, match=r"schemes\[0\].quality means nothing"):
            parse_scenario(raw_scenario, "tiny.yaml")
    finally:
        schemes_module._SCHEMES.unregister("constant")
    raw_scenario["schemes"][0].pop("quality")
    with pytest.raises(ScenarioError, match=r"schemes\[0\].kind: unknown evaluation scheme kind "
                                            r"'constant'; expected one of \['image', 'onboard'"):
        parse_scenario(raw_scenario, "tiny.yaml")
