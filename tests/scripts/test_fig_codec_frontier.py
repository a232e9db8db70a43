"""``scripts/fig_codec_frontier.py`` parses its options into the experiment's config (the experiment
itself: tests/eval/test_codec_frontier.py); ``bench_codec.py`` times the student and image formats."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from research.eval.codec_frontier import FrontierConfig
from research.paths import REPO_ROOT

SCRIPTS = REPO_ROOT / "scripts"


def test_fig_codec_frontier_help_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    script = runpy.run_path(str(SCRIPTS / "fig_codec_frontier.py"))
    with pytest.raises(SystemExit) as exit_:
        script["main"](["--help"])
    assert exit_.value.code == 0 and "--lambdas" in capsys.readouterr().out
    config = script["parse_args"](["--quick", "--out", "x", "--lambdas", "0.1", "0.01", "--no-separate"])
    assert config == FrontierConfig(quick=True, out=Path("x"), lambdas=[0.1, 0.01], separate=False).with_defaults()
    assert FrontierConfig().with_defaults().lambdas == [3e-3, 1e-3, 3e-4, 1e-4]


def test_bench_codec_times_the_student_and_image_formats(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    script = runpy.run_path(str(SCRIPTS / "bench_codec.py"))
    record = script["main"](["--quick", "--reps", "1", "--warmup", "0", "--links", "student",
                             "--image-formats", "jpeg90", "png", "--out", str(out)])
    assert set(json.loads(out.read_text())["per_image"]) == {"student", "jpeg q90", "png"}
    assert record["threads"] == 1 and record["command"].startswith("python scripts/bench_codec.py")
    with pytest.raises(ValueError, match="--image-formats 'gif'"):
        script["main"](["--quick", "--links", "int8", "--image-formats", "gif", "--out", str(out)])


def test_an_out_dir_of_another_training_budget_is_refused_in_one_line(tmp_path: Path) -> None:
    row = {"family": "student", "method": "student variable", "run": "student_variable", "epochs": 60,
           "views": 1, "setting": "grid=2,latent=32,rate=0,lambda=0.003", "bytes_per_inference": 50.0, "acc": 0.8}
    (tmp_path / "rows.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(SystemExit, match="other epochs or views"):
        runpy.run_path(str(SCRIPTS / "fig_codec_frontier.py"))["main"](["--out", str(tmp_path), "--epochs", "6", "--views", "8"])
