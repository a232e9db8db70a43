"""The rate-accuracy experiment (research.eval.rate_accuracy) end to end on generated images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from research.eval.rate_accuracy import RateAccuracyConfig, by_depth, rate_accuracy


def check_outputs(out: Path, record: dict) -> None:
    """The four files of one run agree with its record (also used by the script's slow test)."""
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


def _minimal(out: Path, root: Path, **kw) -> RateAccuracyConfig:
    """Quick mode cut down further: one weight, one epoch, 60 generated images."""
    return RateAccuracyConfig(quick=True, out=out, root=str(root), lambdas=[1e-2], epochs=1,
                              ref_epochs=1, **kw)


def test_rate_accuracy_minimal(tmp_path: Path, fake_root: Path) -> None:
    record = rate_accuracy(_minimal(tmp_path, fake_root, merge_tokens=[1]))
    check_outputs(tmp_path, record)
    assert record["args"]["backbone"] == "satvit_tiny" and record["args"]["splits"] == [1]
    codec = [r for r in record["rows"] if r["family"] == "codec"]
    assert len(codec) == 1 and codec[0]["bytes_per_inference"] > 0
    journal = (tmp_path / "rows.jsonl").read_text().splitlines()
    # a second part of the sweep: a merged codec; the first part's rows stay, nothing is remeasured
    again = rate_accuracy(_minimal(tmp_path, fake_root, merge_tokens=[8]))
    settings = sorted(r["setting"] for r in again["rows"] if r["family"] == "codec")
    assert settings == ["lambda=0.01", "merge=8,lambda=0.01"]
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == len(journal) + 1
    assert len([r for r in again["rows"] if r["family"] == "image"]) == len(
        [r for r in record["rows"] if r["family"] == "image"])


def test_rate_accuracy_skip_images(tmp_path: Path, fake_root: Path) -> None:
    """``skip_images``: a part of a sweep run beside another that measures the image codecs."""
    record = rate_accuracy(_minimal(tmp_path, fake_root, merge_tokens=[1], skip_images=True))
    assert {r["family"] for r in record["rows"]} == {"token", "codec"}
    journal = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert journal and all(r["family"] != "image" for r in journal)


def test_full_defaults_pick_cuts_from_the_depth() -> None:
    config = RateAccuracyConfig().with_defaults()
    assert config.backbone == "satvit_small" and config.splits == [0, 3, 5, 6]
    assert RateAccuracyConfig(splits=[2]).with_defaults().splits == [2]


def test_by_depth_keeps_settings_measured_at_several_cuts() -> None:
    rows = [{"family": "codec", "setting": "a", "split_index": 3, "acc": 0.9, "bytes_per_inference": 40.0},
            {"family": "codec", "setting": "a", "split_index": 0, "acc": 0.6, "bytes_per_inference": 35.0},
            {"family": "codec", "setting": "b", "split_index": 3, "acc": 0.8, "bytes_per_inference": 30.0},
            {"family": "token", "setting": "", "split_index": 0, "acc": 0.9, "bytes_per_inference": 4e4},
            {"family": "token", "setting": "", "split_index": 3, "acc": 0.9, "bytes_per_inference": 4e4}]
    depth = by_depth(rows)
    assert list(depth) == ["a"] and [r["split_index"] for r in depth["a"]] == [0, 3]
