"""The real ``satedge`` entry point driven by the real experiment YAMLs on tiny generated data."""

from __future__ import annotations

from argparse import ArgumentError
from pathlib import Path

import pytest
import torch

from research.cli import main, model_flags, run_lightning, short_error
from research.models.weights import slim_task_checkpoint
from research.paths import REPO_ROOT

EXPERIMENTS = REPO_ROOT / "experiments" / "foundation"
TINY = ["--model.init_args.backbone", "satvit_tiny", "--data.init_args.batch_size", "8"]


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The YAMLs write logs and checkpoints under ./outputs: keep them in the test's folder."""
    monkeypatch.chdir(tmp_path)


def _overrides(fake_root: Path, tmp_path: Path) -> list[str]:
    return TINY + [
        "--data.init_args.root", str(fake_root),
        "--data.init_args.split_file", str(tmp_path / "split.json"),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
    ]


def test_pretrain_fast_dev_run(fake_root: Path, tmp_path: Path) -> None:
    args = ["fit", "--config", str(EXPERIMENTS / "pretrain_mae.yaml"), *_overrides(fake_root, tmp_path)]
    assert main([*args, "--trainer.fast_dev_run", "1"]) == 0


def test_long_pretraining_overlays_the_base_config(fake_root: Path, tmp_path: Path) -> None:
    args = [
        "fit", "--config", str(EXPERIMENTS / "pretrain_mae.yaml"), "--config", str(EXPERIMENTS / "pretrain_mae_long.yaml"),
        *_overrides(fake_root, tmp_path), "--trainer.fast_dev_run", "1",
    ]
    assert main(args) == 0


@pytest.mark.parametrize("mode", ["head", "lora", "full"])
def test_finetune_fast_dev_run(mode: str, fake_root: Path, tmp_path: Path) -> None:
    args = ["fit", "--config", str(EXPERIMENTS / f"finetune_{mode}.yaml"), *_overrides(fake_root, tmp_path)]
    assert main([*args, "--model.init_args.pretrained", "null", "--trainer.fast_dev_run", "1"]) == 0



@pytest.mark.parametrize("stage", ["finetune_full_long", "finetune_full_ema", "finetune_full_mix", "finetune_full_mae_long"])
def test_later_full_stages_overlay_the_base_config(stage: str, fake_root: Path, tmp_path: Path) -> None:
    args = [
        "fit", "--config", str(EXPERIMENTS / "finetune_full.yaml"), "--config", str(EXPERIMENTS / f"{stage}.yaml"),
        *_overrides(fake_root, tmp_path), "--model.init_args.pretrained", "null", "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
    ]
    assert main(args) == 0
    last = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=False)
    # EMAWeightAveraging saves the averaged weights as state_dict and keeps the raw ones beside them
    assert ("current_model_state" in last) == (stage != "finetune_full_long")


def test_fit_checkpoint_resume_and_test(fake_root: Path, tmp_path: Path) -> None:
    base = [
        "--config", str(EXPERIMENTS / "finetune_full.yaml"), *_overrides(fake_root, tmp_path),
        "--model.init_args.pretrained", "null", "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1",
    ]
    assert main(["fit", *base, "--trainer.max_epochs", "1"]) == 0
    last = next(tmp_path.rglob("last.ckpt"))
    assert torch.load(last, weights_only=False)["epoch"] == 0
    assert main(["fit", *base, "--trainer.max_epochs", "2", "--ckpt_path", str(last)]) == 0
    newest = max(tmp_path.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    resumed = torch.load(newest, weights_only=False)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 4
    assert main(["test", *base, "--ckpt_path", str(last)]) == 0
    # The checkpoint's hyper-parameters rebuild the model, but options given on the command line win.
    assert run_lightning(["test", *base, "--ckpt_path", str(last)]).model.hparams.test_views == 1
    tta = run_lightning(["test", *base, "--ckpt_path", str(last), "--model.init_args.test_views=8"])
    assert tta.model.hparams.test_views == 8 and tta.model.hparams.backbone == "satvit_tiny"
    # The slim fp16 checkpoint we commit restores for testing as well.
    slim = tmp_path / "slim.ckpt"
    torch.save(slim_task_checkpoint(torch.load(last, weights_only=False)), slim)
    assert main(["test", *base, "--ckpt_path", str(slim)]) == 0


def test_config_typo_names_the_key(fake_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["fit", "--config", str(EXPERIMENTS / "finetune_full.yaml"), *_overrides(fake_root, tmp_path)]
    assert main([*args, "--model.init_args.split_indx", "1"]) == 2
    err = capsys.readouterr().err
    assert "split_indx" in err and len(err.strip().splitlines()) <= 3


def test_bad_value_is_one_line_naming_the_key_and_debug_shows_the_traceback(
        fake_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["fit", "--config", str(EXPERIMENTS / "finetune_full.yaml"), *_overrides(fake_root, tmp_path),
            "--model.init_args.lr", "abc"]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) <= 3
    assert lines[0].startswith("satedge fit: error: model.lr: Expected a <class 'float'>. Got value: abc")
    with pytest.raises(ArgumentError, match="Does not validate"):
        main([*args, "--debug"])


def test_subcommand_errors_stay_short(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["orbit", "plan", "--config", str(tmp_path / "missing.yaml")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 3 and "missing.yaml" in err[0]


def test_short_error_takes_the_key_path_and_the_first_reason() -> None:
    message = """Parser key "model":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'research.tasks.base.BaseTask'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'research.tasks.codec.CodecTask':
        Parser key "lmbda":
          Expected a <class 'float'>. Got value: abc
    - Expected a <class 'NoneType'>
  Given value type: <class 'jsonargparse._util.NestedArg'>"""
    assert short_error(ValueError(message)) == "model.lmbda: Expected a <class 'float'>. Got value: abc"
    assert short_error(ValueError("rate_index=4 is out of range")) == "rate_index=4 is out of range"
    assert short_error(KeyError("bogus")) == "'bogus'"


def test_model_flags_keep_each_value() -> None:
    argv = ["test", "--config", "a.yaml", "--model.init_args.test_views", "8", "--trainer.max_epochs", "1",
            "--model.init_args.lr=0.1", "--ckpt_path", "x.ckpt"]
    assert model_flags(argv) == ["--model.init_args.test_views", "8", "--model.init_args.lr=0.1"]


def test_a_checkpoint_of_another_task_is_refused(fake_root: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    # Lightning rebuilt the checkpoint's own task, so a classifier checkpoint under the codec
    # config was tested without any codec and exited 0.
    classifier = REPO_ROOT / "checkpoints" / "satvit_small_full.ckpt"
    args = ["test", "--config", str(REPO_ROOT / "experiments" / "codec" / "base.yaml"),
            "--data.init_args.root", str(fake_root), "--ckpt_path", str(classifier)]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) <= 3
    assert "holds a ClassificationTask checkpoint" in lines[0]
    assert "research.tasks.codec.CodecTask" in lines[0]
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    assert main([*args[:-1], str(garbage)]) == 2
    assert "garbage.ckpt is not a readable Lightning checkpoint" in capsys.readouterr().err
