"""scripts/fig_spike_link_rate.py: a malformed setting is named; --replot redraws committed rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from research.paths import REPO_ROOT
from tests.scripts.conftest import load_script


def test_a_malformed_setting_is_named(capsys) -> None:
    with pytest.raises(SystemExit):
        load_script("fig_spike_link_rate").main(["--settings", "16,1"])
    assert "'16,1': expected K,MERGE,LAMBDA" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_script("fig_spike_link_rate").main(["--settings", "16,1,1e-3,8,9"])
    assert "expected K,MERGE,LAMBDA[,ENC_HIDDEN]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_script("fig_spike_link_rate").main(["--settings", "16,1,1e-3,0"])
    assert "ENC_HIDDEN >= 1" in capsys.readouterr().err


def test_replot_redraws_the_committed_rows(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "results" / "spike_link_rate" / "spike_link_rate.json", tmp_path)
    load_script("fig_spike_link_rate").main(["--replot", "--out", str(tmp_path)])
    assert (tmp_path / "spike_link_rate.png").is_file() and (tmp_path / "spike_link_rate.pdf").is_file()
    rows = json.loads((tmp_path / "spike_link_rate.json").read_text())["rows"]
    assert {(r["k"], r["merge"]) for r in rows} == {(16, 1), (64, 2)}
