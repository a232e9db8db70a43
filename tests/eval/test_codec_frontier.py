"""The split-0 frontier (research.eval.codec_frontier) end to end on generated images, its resume,
and the pure pieces: variable-rate gaps, FLOPs of the sweep's rows, and config checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from research.eval.codec_frontier import (
    FrontierConfig,
    _student_label,
    baseline_rows,
    codec_frontier,
    on_board_flops,
    train_student,
    variable_rate_gaps,
)
from research.eval.rate_accuracy import cut_tokens, reference_model
from research.models.presets import build_backbone
from research.models.split_vit import SplitViT


def _minimal(out: Path, root: Path, **kw) -> FrontierConfig:
    return FrontierConfig(quick=True, out=out, root=str(root), lambdas=[1e-2, 1e-3], epochs=1,
                          ref_epochs=1, **kw)


def test_frontier_minimal_then_rerun_measures_nothing_again(tmp_path: Path, fake_root: Path) -> None:
    record = codec_frontier(_minimal(tmp_path, fake_root))
    rows = [r for r in record["rows"] if r["family"] == "student"]
    arch = "grid=2,latent=32,"  # the student's architecture leads every setting
    assert sorted(r["setting"] for r in rows) == [
        arch + "lambda=0.001", arch + "lambda=0.01", arch + "rate=0,lambda=0.01", arch + "rate=1,lambda=0.001"]
    for row in rows:
        assert row["bytes_per_inference"] > 19 and 0 <= row["acc"] <= 1 and row["on_board_flops"] > 0
    assert len(record["variable_rate_gaps"]) == 2
    for suffix in ("png", "pdf", "csv", "json"):
        assert (tmp_path / f"frontier.{suffix}").stat().st_size > 200
    assert (tmp_path / "codecs" / "student_variable.ckpt").exists()
    journal = (tmp_path / "rows.jsonl").read_text()
    again = codec_frontier(_minimal(tmp_path, fake_root))
    assert (tmp_path / "rows.jsonl").read_text() == journal  # nothing retrained or re-measured
    assert len(again["rows"]) == len(record["rows"])
    with pytest.raises(ValueError, match="other epochs or views"):  # not resumed as if the same run
        codec_frontier(_minimal(tmp_path, fake_root, views=2))
    # students trained elsewhere join another run's figure; nothing is trained there
    joined = codec_frontier(_minimal(tmp_path / "joined", fake_root, train=False, join=[tmp_path / "rows.jsonl"]))
    assert sorted(r["setting"] for r in joined["rows"]) == sorted(r["setting"] for r in rows)
    assert not (tmp_path / "joined" / "codecs").exists()


def test_an_interrupted_training_resumes_from_its_last_epoch(tmp_path: Path, fake_root: Path) -> None:
    config = _minimal(tmp_path, fake_root).with_defaults()
    reference = reference_model(config)
    train_dm = cut_tokens(config, reference.weights, reference.dm, 0)
    run = {"name": "student_lambda0.01", "lmbda": 1e-2, "num_rates": 1}
    first, _ = train_student(config, run, reference.weights, train_dm)  # stopped after epoch 1
    steps = first.trainer.global_step
    last = tmp_path / "runs" / run["name"] / "last.ckpt"
    epoch = torch.load(last, weights_only=False)["epoch"]
    config.epochs = 2
    resumed, _ = train_student(config, run, reference.weights, train_dm)
    assert resumed.trainer.global_step == 2 * steps  # continued, not restarted
    assert torch.load(last, weights_only=False)["epoch"] == epoch + 1


def test_variable_rate_gaps_interpolate_in_log_bytes() -> None:
    fixed = [{"method": "student fixed", "setting": f"grid=2,lambda={lam}", "epochs": 2,
              "bytes_per_inference": b, "acc": a} for lam, b, a in ((1e-2, 40.0, 0.90), (1e-3, 160.0, 0.96))]
    variable = [{"method": "student variable", "setting": f"grid=2,{s}", "epochs": 2, "bytes_per_inference": b,
                 "acc": a} for s, b, a in (("rate=0", 80.0, 0.925), ("rate=1", 320.0, 0.97))]
    inside, outside = variable_rate_gaps(fixed + variable)
    assert inside["fixed_acc_at_bytes"] == pytest.approx(0.93)  # halfway in log-bytes
    assert inside["gap_points"] == pytest.approx(-0.5)
    assert outside["gap_points"] is None  # beyond the fixed codecs: no comparison invented


def test_variable_rate_gaps_compare_only_the_same_training() -> None:
    """A longer-trained fixed student (more epochs or views, another device) or another
    architecture is not the reference a variable-rate student is judged against."""
    def row(method, setting, b, a, epochs=2, device="cpu", views=1):
        return {"method": method, "setting": setting, "epochs": epochs, "device": device,
                "views": views, "bytes_per_inference": b, "acc": a}

    rows = [row("student fixed", "grid=2,lambda=0.01", 40.0, 0.90), row("student fixed", "grid=2,lambda=0.001", 160.0, 0.96),
            row("student fixed", "grid=4,lambda=0.01", 40.0, 0.99), row("student fixed", "grid=4,lambda=0.001", 160.0, 0.99),
            row("student fixed", "grid=2,lambda=0.01", 40.0, 0.99, epochs=60, device="GPU"),
            row("student fixed", "grid=2,lambda=0.001", 160.0, 0.99, epochs=60, device="GPU"),
            row("student fixed", "grid=2,lambda=0.01", 40.0, 0.99, views=8),  # augmented views
            row("student fixed", "grid=2,lambda=0.001", 160.0, 0.99, views=8),
            row("student variable", "grid=2,rate=0", 80.0, 0.925)]
    (gap,) = variable_rate_gaps(rows)
    assert gap["fixed_acc_at_bytes"] == pytest.approx(0.93)


def test_students_trained_on_augmented_views_get_their_own_legend_entry() -> None:
    row = {"method": "student fixed", "setting": "grid=4,latent=16,lambda=0.001", "epochs": 6,
           "device": "NVIDIA H200"}
    assert _student_label(row) == "student fixed @ split 0, grid=4,latent=16, 6 epochs (H200)"
    assert _student_label({**row, "views": 8}) == ("student fixed @ split 0, grid=4,latent=16, "
                                                   "6 epochs x 8 views (H200)")


def test_sweep_rows_get_flops_counted_like_the_students(tmp_path: Path) -> None:
    rows = [
        {"family": "image", "method": "jpeg", "split_index": "", "setting": "q=90", "bytes_per_inference": 900, "acc": 0.9},
        {"family": "token", "method": "int8", "split_index": 1, "setting": "", "bytes_per_inference": 600, "acc": 0.9},
        {"family": "codec", "method": "factorized", "split_index": 1, "setting": "merge=2,hidden=16,lambda=0.01",
         "bytes_per_inference": 40, "acc": 0.8},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    image, token, codec = baseline_rows(path, "satvit_tiny")
    assert image["on_board_flops"] is None
    satellite = on_board_flops(SplitViT(build_backbone("satvit_tiny"), 1), torch.nn.Identity())
    assert token["on_board_flops"] == satellite > 0
    assert codec["on_board_flops"] > satellite


def test_rate_weights_must_come_coarsest_first() -> None:
    with pytest.raises(ValueError, match="coarsest"):
        FrontierConfig(quick=True, lambdas=[1e-3, 1e-2]).with_defaults()


def test_a_join_that_names_no_rows_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="join: no frontier rows at .*absent.jsonl"):
        FrontierConfig(quick=True, out=tmp_path, join=[tmp_path / "absent.jsonl"]).with_defaults()
