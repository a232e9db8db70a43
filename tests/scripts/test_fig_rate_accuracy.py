"""The rate-accuracy figure and the codec benchmark run end to end in their quick modes."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from research.paths import REPO_ROOT

SCRIPTS = REPO_ROOT / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_outputs(out: Path, record: dict) -> None:
    for suffix in ("png", "pdf"):
        assert (out / f"rate_accuracy.{suffix}").stat().st_size > 1000
    rows = list(csv.DictReader((out / "rate_accuracy.csv").open()))
    families = {r["family"] for r in rows}
    assert families == {"image", "token", "codec"}
    raw = next(r for r in rows if r["method"] == "raw")
    assert float(raw["bytes_per_inference"]) == 3 * 64 * 64
    assert {r["method"] for r in rows} >= {"png", "jpeg", "webp", "identity", "float16", "int8", "int4"}
    saved = json.loads((out / "rate_accuracy.json").read_text())
    assert saved["summary"] and 0 < saved["reference_acc"] <= 1
    assert saved["summary"].keys() == record["summary"].keys()


def test_fig_rate_accuracy_minimal(tmp_path: Path, fake_root: Path) -> None:
    """Quick mode cut down further (one weight, one epoch, 60 generated images), in-process."""
    fig = _load("fig_rate_accuracy")
    args = ["--quick", "--out", str(tmp_path), "--root", str(fake_root), "--lambdas", "1e-2",
            "--merge-tokens", "1", "--epochs", "1", "--ref-epochs", "1"]
    record = fig.main(args)
    _check_outputs(tmp_path, record)
    codec = [r for r in record["rows"] if r["family"] == "codec"]
    assert len(codec) == 1 and codec[0]["bytes_per_inference"] > 0
    journal = (tmp_path / "rows.jsonl").read_text().splitlines()
    # a second part of the sweep: a merged codec; the first part's rows stay, nothing is remeasured
    again = fig.main([*args[:-6], "--merge-tokens", "8", "--epochs", "1", "--ref-epochs", "1"])
    settings = sorted(r["setting"] for r in again["rows"] if r["family"] == "codec")
    assert settings == ["lambda=0.01", "merge=8,lambda=0.01"]
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == len(journal) + 1
    assert len([r for r in again["rows"] if r["family"] == "image"]) == len(
        [r for r in record["rows"] if r["family"] == "image"])


def test_fig_rate_accuracy_skip_images(tmp_path: Path, fake_root: Path) -> None:
    """``--skip-images``: a part of a sweep run beside another that measures the image codecs."""
    fig = _load("fig_rate_accuracy")
    record = fig.main(["--quick", "--out", str(tmp_path), "--root", str(fake_root), "--lambdas", "1e-2",
                       "--merge-tokens", "1", "--epochs", "1", "--ref-epochs", "1", "--skip-images"])
    assert {r["family"] for r in record["rows"]} == {"token", "codec"}
    journal = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert journal and all(r["family"] != "image" for r in journal)


@pytest.mark.slow
def test_fig_rate_accuracy_quick(tmp_path: Path) -> None:
    """The documented ``--quick`` run (~2 min on 2 busy CPU cores)."""
    subprocess.run([sys.executable, str(SCRIPTS / "fig_rate_accuracy.py"), "--quick", "--out", str(tmp_path)],
                   cwd=REPO_ROOT, check=True, capture_output=True, text=True, timeout=600)
    _check_outputs(tmp_path, json.loads((tmp_path / "rate_accuracy.json").read_text()))


def test_bench_codec_quick(tmp_path: Path) -> None:
    bench = _load("bench_codec")
    out = tmp_path / "bench.json"
    record = bench.main(["--quick", "--reps", "1", "--warmup", "0", "--links", "identity", "int8",
                         "factorized", "--out", str(out)])
    saved = json.loads(out.read_text())["per_image"]
    assert saved.keys() == record["per_image"].keys() == {"identity", "int8", "factorized"}
    for row in saved.values():
        assert row["satellite_ms"] > 0 and row["encode_ms"] > 0 and row["decode_ms"] > 0


def test_by_depth_keeps_settings_measured_at_several_cuts() -> None:
    fig = _load("fig_rate_accuracy")
    rows = [{"family": "codec", "setting": "a", "split_index": 3, "acc": 0.9, "bytes_per_inference": 40.0},
            {"family": "codec", "setting": "a", "split_index": 0, "acc": 0.6, "bytes_per_inference": 35.0},
            {"family": "codec", "setting": "b", "split_index": 3, "acc": 0.8, "bytes_per_inference": 30.0},
            {"family": "token", "setting": "", "split_index": 0, "acc": 0.9, "bytes_per_inference": 4e4},
            {"family": "token", "setting": "", "split_index": 3, "acc": 0.9, "bytes_per_inference": 4e4}]
    depth = fig.by_depth(rows)
    assert list(depth) == ["a"] and [r["split_index"] for r in depth["a"]] == [0, 3]
