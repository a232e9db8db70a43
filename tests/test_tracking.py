"""log_run writes an offline W&B run with config, summary, figure and table; disabled is a no-op."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from research.tracking import _scalars, log_run  # noqa: E402


def test_nested_summary_is_flattened():
    assert _scalars({"a": {"b": 1, "c": [1]}, "d": "x"}) == {"a/b": 1, "d": "x"}


def test_disabled_mode_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert log_run("evaluate", {}, {"acc": 1.0}, out_dir=tmp_path) is None
    assert not (tmp_path / "wandb").exists()


def test_offline_run_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    fig_path = tmp_path / "f.png"
    plt.plot([0, 1])
    plt.savefig(fig_path)
    plt.close()
    run_dir = log_run("evaluate", {"k": 1}, {"acc": {"top1": 0.5}}, out_dir=tmp_path,
                      figures=[fig_path], tables={"ledger": [{"a": 1, "b": 2.0}]})
    assert run_dir is not None
    # The run's folder holds its files; the binary log sits beside them.
    run_root = Path(run_dir).parent
    assert run_root.name.startswith("offline-run-")
    assert any(run_root.glob("run-*.wandb"))
