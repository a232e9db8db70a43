"""The committed SecAgg measurements redraw from their CSV/JSON and say what the README says."""

from __future__ import annotations

import json
import shutil

import pytest

from research.paths import REPO_ROOT
from tests.scripts.conftest import load_script

RESULTS = REPO_ROOT / "results" / "fed_secagg"


def main(argv: list[str]) -> int:
    return load_script("fig_fed_secagg").main(argv)


def rows(name: str) -> list[dict]:
    return json.loads((RESULTS / f"{name}.json").read_text())["rows"]


@pytest.mark.skipif(not (RESULTS / "fed_secagg_runs.json").is_file(),
                    reason="results/fed_secagg not committed")
def test_committed_secagg_runs_replot_and_keep_the_head(tmp_path):
    out = tmp_path / "fed_secagg"
    shutil.copytree(RESULTS, out)
    for name in ("fed_secagg.png", "fed_secagg_regime.png"):
        (out / name).unlink()
    assert main(["--replot", "--out", str(out)]) == 0
    assert (out / "fed_secagg.png").is_file() and (out / "fed_secagg_regime.png").is_file()
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
