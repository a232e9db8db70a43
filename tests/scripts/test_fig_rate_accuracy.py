"""``scripts/fig_rate_accuracy.py`` parses its options into the experiment's config; the codec
benchmark runs in its quick mode. The experiment itself: tests/eval/test_rate_accuracy.py."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from research.eval.rate_accuracy import RateAccuracyConfig
from research.paths import REPO_ROOT
from tests.eval.test_rate_accuracy import check_outputs

SCRIPTS = REPO_ROOT / "scripts"


def _script(name: str) -> dict:
    """The globals of ``scripts/<name>.py``, loaded without running its ``__main__`` block."""
    return runpy.run_path(str(SCRIPTS / f"{name}.py"))


def test_fig_rate_accuracy_help_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    script = _script("fig_rate_accuracy")
    with pytest.raises(SystemExit) as exit_:
        script["main"](["--help"])
    assert exit_.value.code == 0 and "--merge-tokens" in capsys.readouterr().out
    config = script["parse_args"](["--quick", "--out", "x", "--merge-tokens", "8", "--skip-images"])
    assert config == RateAccuracyConfig(quick=True, out=Path("x"), merge_tokens=[8],
                                        skip_images=True).with_defaults()


@pytest.mark.slow
def test_fig_rate_accuracy_quick(tmp_path: Path) -> None:
    """The documented ``--quick`` run (~2 min on 2 busy CPU cores)."""
    subprocess.run([sys.executable, str(SCRIPTS / "fig_rate_accuracy.py"), "--quick", "--out", str(tmp_path)],
                   cwd=REPO_ROOT, check=True, capture_output=True, text=True, timeout=600)
    check_outputs(tmp_path, json.loads((tmp_path / "rate_accuracy.json").read_text()))


def test_bench_codec_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    record = _script("bench_codec")["main"](["--quick", "--reps", "1", "--warmup", "0", "--links", "identity",
                                             "int8", "factorized", "--image-formats", "--out", str(out)])
    saved = json.loads(out.read_text())["per_image"]
    assert saved.keys() == record["per_image"].keys() == {"identity", "int8", "factorized"}
    for row in saved.values():
        assert row["satellite_ms"] > 0 and row["encode_ms"] > 0 and row["decode_ms"] > 0
