"""The committed SecAgg measurements redraw from their CSV/JSON and say what the README says."""

from __future__ import annotations

import json

import pytest

from research.paths import REPO_ROOT
from tests.scripts.conftest import load_script, replot_committed

RESULTS = REPO_ROOT / "results" / "fed_secagg"


def main(argv: list[str]) -> int:
    return load_script("fig_fed_secagg").main(argv)


def rows(name: str) -> list[dict]:
    return json.loads((RESULTS / f"{name}.json").read_text())["rows"]


@pytest.mark.skipif(not (RESULTS / "fed_secagg_runs.json").is_file(),
                    reason="results/fed_secagg not committed")
def test_committed_secagg_runs_replot_and_keep_the_head(tmp_path):
    replot_committed("fig_fed_secagg", RESULTS, ("fed_secagg", "fed_secagg_regime"), tmp_path)
    runs = {r["run"]: r for r in rows("fed_secagg_runs")}
    assert set(runs) == {f"{t}_{v}" for t in ("ring", "star")
                         for v in ("plain", "secagg64", "secagg32")}
    for t in ("ring", "star"):
        assert runs[f"{t}_secagg64"]["accuracy"] == runs[f"{t}_plain"]["accuracy"]
        assert runs[f"{t}_secagg64"]["max_abs_error"] < 1e-6
        assert all(runs[f"{t}_{v}"]["rounds"] == 30 for v in ("plain", "secagg64", "secagg32"))
    assert runs["star_secagg64"]["round_s_mean"] > 2.5 * runs["star_plain"]["round_s_mean"]
    regime = rows("fed_secagg_regime")
    assert sorted({r["satellites"] for r in regime}) == [66, 132, 264]
    assert all(r["participants_secure"] == r["participants_plain"] == r["satellites"]
               for r in regime)


@pytest.mark.skipif(not (RESULTS / "bench_fed_secagg.json").is_file(),
                    reason="bench not committed")
def test_committed_bench_has_every_engine_and_flower_agrees():
    bench = json.loads((RESULTS / "bench_fed_secagg.json").read_text())
    assert [r["run"] for r in bench["rows"]] == ["in-process", "in-process secagg", "flower",
                                                 "flower secagg"]
    assert bench["rows"][0]["ratio"] == 1.0
    assert bench["flower_vs_in_process_head_max_abs_diff"] < 1e-4
    assert len({r["accuracy"] for r in bench["rows"]}) == 1
