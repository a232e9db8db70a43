"""scripts/fig_snn_cut.py: a quick run writes rows, ratios and the figure; missing inputs are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from research.paths import REPO_ROOT
from tests.scripts.conftest import load_script


def _script():
    return load_script("fig_snn_cut")


def test_quick_run_measures_the_committed_spiking_part(tmp_path: Path) -> None:
    _script().main(["--quick", "--limit", "16", "--cuts", "3", "--checkpoints",
                    "checkpoints/satvit_small_snn_cut3_ssa.ckpt", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "snn_cut.json").read_text())
    names = [r["name"] for r in record["rows"]]
    assert names == ["ann-identity@3", "snn-spike@3", "snn-identity@3"]
    assert {r["ann"] for r in record["ratios"]} == {"ann-identity@3"}
    assert (tmp_path / "snn_cut.png").is_file() and (tmp_path / "snn_cut.pdf").is_file()


def test_a_missing_checkpoint_names_the_command_that_makes_it(capsys) -> None:
    module = _script()
    with pytest.raises(SystemExit):
        module.main(["--checkpoints", module.ANN_CODEC_CUT3, "nowhere.ckpt", "--out", "unused"])
    err = capsys.readouterr().err
    assert "nowhere.ckpt" in err
    if not (REPO_ROOT / module.ANN_CODEC_CUT3).is_file():  # a fresh checkout: how to make it
        assert "fig_rate_accuracy.py --out outputs/ann_codec_cut3" in err


def test_a_label_is_read_only_before_an_equals_sign_outside_the_path() -> None:
    parse = _script().labelled_checkpoint
    assert parse("GPU, joint=outputs/x.ckpt") == ("GPU, joint", "outputs/x.ckpt")
    assert parse("checkpoints/a.ckpt") == (None, "checkpoints/a.ckpt")
    # codec file names hold '=' themselves: a directory before it makes it a path
    codec = "outputs/ann_codec_cut3/codecs/split3_merge=8,hidden=64,distill=1,lambda=0.001.ckpt"
    assert parse(codec) == (None, codec)
    assert parse("ann=" + codec) == ("ann", codec)


def test_labelled_checkpoints_name_their_rows(tmp_path: Path) -> None:
    _script().main(["--quick", "--limit", "8", "--cuts", "3", "--checkpoints",
                    "as committed=checkpoints/satvit_small_snn_cut3_ssa.ckpt", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "snn_cut.json").read_text())
    assert [r["name"] for r in record["rows"]] == [
        "ann-identity@3", "snn-spike@3 (as committed)", "snn-identity@3 (as committed)"]
    # the recorded command reruns as written: the label with a space stays one argument
    assert "'as committed=checkpoints/satvit_small_snn_cut3_ssa.ckpt'" in record["command"]
