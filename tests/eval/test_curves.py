"""Per-epoch curves from CSVLogger files, and the ablation figure script."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from research.eval.curves import best_epoch, epoch_metrics

HEADER = "epoch,step,train/loss_step,val/acc,val/loss\n"


def write_metrics(path: Path, accs: list[float]) -> Path:
    lines = [HEADER]
    for epoch, acc in enumerate(accs):
        lines.append(f"{epoch},{10 * epoch + 5},0.9,,\n")  # a step row: no validation cells
        lines.append(f"{epoch},{10 * epoch + 9},,{acc},{1 - acc}\n")
    path.write_text("".join(lines))
    return path


def test_epoch_metrics_keeps_one_row_per_epoch(tmp_path: Path) -> None:
    curves = epoch_metrics(write_metrics(tmp_path / "m.csv", [0.5, 0.8, 0.7]))
    assert curves["epoch"] == [0.0, 1.0, 2.0]
    assert curves["val/acc"] == [0.5, 0.8, 0.7]
    assert curves["val/loss"] == pytest.approx([0.5, 0.2, 0.3])
    assert best_epoch(curves) == (1, 0.8)


def test_epoch_metrics_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("epoch,step,train/loss\n0,1,0.5\n")
    with pytest.raises(ValueError, match=r"val/acc"):
        epoch_metrics(path)
    with pytest.raises(FileNotFoundError, match="metrics file"):
        epoch_metrics(tmp_path / "absent.csv")


def test_figure_script_writes_json_and_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = write_metrics(tmp_path / "a.csv", [0.5, 0.9])
    b = write_metrics(tmp_path / "b.csv", [0.6, 0.7, 0.95])
    out = tmp_path / "out"
    argv = ["fig_finetune_curves.py", "--run", f"a={a}", "--run", f"b={b}", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "fig_finetune_curves.py"), run_name="__main__")
    record = json.loads((out / "curves.json").read_text())
    assert record["runs"]["b"]["best_epoch"] == 2 and record["runs"]["a"]["best_val_acc"] == 0.9
    assert record["command"].startswith("python scripts/fig_finetune_curves.py --run")
    assert (out / "curves.png").stat().st_size > 0 and (out / "curves.pdf").stat().st_size > 0


def test_figure_script_refuses_a_run_without_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["fig_finetune_curves.py", "--run", "metrics.csv", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "fig_finetune_curves.py"), run_name="__main__")
    assert "expected NAME=path/to/metrics.csv" in capsys.readouterr().err
