"""The committed privacy curve redraws from its CSV/JSON and keeps its budgets."""

from __future__ import annotations

import json

import pytest

from research.paths import REPO_ROOT
from tests.scripts.conftest import load_script, replot_committed

RESULTS = REPO_ROOT / "results" / "fed_privacy"


def main(argv: list[str]) -> int:
    return load_script("fig_fed_privacy").main(argv)


@pytest.mark.skipif(not (RESULTS / "fed_privacy_runs.json").is_file(),
                    reason="results/fed_privacy not committed")
def test_committed_curve_replots_and_every_run_spent_at_most_its_target(tmp_path):
    replot_committed("fig_fed_privacy", RESULTS, ("fed_privacy",), tmp_path)
    rows = json.loads((RESULTS / "fed_privacy_runs.json").read_text())["rows"]
    private = [r for r in rows if r["target_epsilon"]]
    assert {r["level"] for r in private} == {"satellite", "image"}
    assert len({r["target_epsilon"] for r in private}) >= 4
    assert all(r["epsilon"] <= r["target_epsilon"] * 1.001 for r in private)
    seeds = {(r["level"], r["target_epsilon"]): set() for r in private}
    for r in private:
        seeds[(r["level"], r["target_epsilon"])].add(r["seed"])
    assert all(len(s) == 3 for s in seeds.values())


@pytest.mark.parametrize("setting", ["2", "2,0.5,1.5", "2,0.5,10,1", "fast,0", "2,0,inf"])
def test_a_malformed_server_setting_is_named(setting, capsys):
    with pytest.raises(SystemExit):
        main(["--server-opt", "1,0", setting, "--out", "unused"])
    assert "--server-opt: each setting is LR,MOMENTUM[,ROUNDS]" in capsys.readouterr().err


def test_an_out_of_range_server_setting_is_named_before_any_run(capsys):
    with pytest.raises(SystemExit):
        main(["--server-opt", "1,1.0", "--out", "unused"])
    assert "train.server_momentum in [0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--server-opt", "1,0,0", "--out", "unused"])
    assert "train.rounds" in capsys.readouterr().err


def test_replot_of_an_empty_folder_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--replot", "--out", str(tmp_path)])
    assert "holds neither fed_privacy_runs.json nor" in capsys.readouterr().err


@pytest.mark.parametrize("folder", ["server_opt", "server_opt_rounds"])
def test_committed_server_grids_replot(folder, tmp_path):
    import shutil

    src = RESULTS / folder
    if not (src / "fed_privacy_server_opt.json").is_file():
        pytest.skip(f"results/fed_privacy/{folder} not committed")
    shutil.copy(src / "fed_privacy_server_opt.json", tmp_path)
    assert main(["--replot", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "fed_privacy_server_opt.png").is_file()


def test_an_unknown_set_key_is_named(capsys):
    with pytest.raises(SystemExit):
        main(["--set", "train.server_moment=0.5", "--server-opt", "1,0", "--out", "unused"])
    assert "server_moment" in capsys.readouterr().err
