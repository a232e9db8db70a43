"""The committed federated comparison redraws from its CSV and says what the README says."""

from __future__ import annotations

import json

import pytest

from research.paths import REPO_ROOT
from tests.scripts.conftest import replot_committed

RESULTS = REPO_ROOT / "results" / "fed"


@pytest.mark.skipif(not (RESULTS / "fed_time_summary.json").is_file(),
                    reason="results/fed not committed")
def test_committed_comparison_replots_and_matches_the_readme(tmp_path):
    replot_committed("fig_fed_time", RESULTS, ("fed_time",), tmp_path)
    summary = json.loads((RESULTS / "fed_time_summary.json").read_text())
    readme = (REPO_ROOT / "README.md").read_text()
    ratios, spread = summary["ratios"], summary["ratios_over_seeds"]
    assert f"{ratios['collaborative / onboard']['ratio']:.0f} times faster" in readme
    assert f"{ratios['collaborative / centralised']['ratio']:,.0f} times as long" in readme
    s = spread["collaborative / onboard"]
    assert s["seeds"] == [0, 1, 2]
    assert f"{s['ratio_mean']:.0f} +- {s['ratio_std']:.0f}" in readme
    c = spread["collaborative / centralised"]
    assert f"{c['ratio_mean']:,.0f} +-\n{c['ratio_std']:.0f}" in readme or \
        f"{c['ratio_mean']:,.0f} +- {c['ratio_std']:.0f}" in readme
    runs = summary["runs"]
    assert runs["centralised"]["bytes"]["model_exchange"] == 0
    assert runs["collab_int8"]["bytes"]["downlink"] < runs["collaborative"]["bytes"]["downlink"] / 3
