"""A Lightning run that stops (or is killed, even while writing a checkpoint) resumes to the bit.

Checked on the real experiment YAMLs with tiny generated data: the weights and optimiser state
after ``fit`` to epoch 2 in one go equal those after ``fit`` to epoch 1 and a resume to epoch 2.
MAE draws a random mask every step and the codec trains two optimisers (the entropy model's
quantiles on their own), so they fail without the saved random state or a whole optimiser state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from research.cli import main
from research.paths import REPO_ROOT

EXPERIMENTS = REPO_ROOT / "experiments"


def _args(config: str, fake_root: Path, out: Path, epochs: int) -> list[str]:
    return [
        "fit", "--config", str(EXPERIMENTS / config),
        "--model.init_args.backbone", "satvit_tiny", "--data.init_args.batch_size", "8",
        "--data.init_args.root", str(fake_root),
        "--data.init_args.split_file", str(out.parent / "split.json"),
        "--trainer.default_root_dir", str(out),
        "--trainer.enable_progress_bar", "false", "--trainer.limit_train_batches", "3",
        "--trainer.limit_val_batches", "1", "--trainer.max_epochs", str(epochs),
        *(["--model.init_args.pretrained", "null"] if "mae" not in config else []),
    ]


def _fit(args: list[str], out: Path) -> int:
    """``satedge fit`` with the YAML's ./outputs (logs, checkpoints) kept under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    here = Path.cwd()
    os.chdir(out)
    try:
        return main(args)
    finally:
        os.chdir(here)


def _last(out: Path) -> Path:
    return max(out.rglob("last*.ckpt"), key=lambda p: p.stat().st_mtime_ns)


def _assert_same_state(a: Path, b: Path) -> None:
    ca, cb = (torch.load(p, weights_only=False, map_location="cpu") for p in (a, b))
    assert (ca["epoch"], ca["global_step"]) == (cb["epoch"], cb["global_step"])
    for key, value in ca["state_dict"].items():
        assert torch.equal(value, cb["state_dict"][key]), f"weights differ at {key}"
    for sa, sb in zip(ca["optimizer_states"], cb["optimizer_states"], strict=True):
        for pid, st in sa["state"].items():
            for name, value in st.items():
                if torch.is_tensor(value):
                    assert torch.equal(value, sb["state"][pid][name]), f"optimiser {name} differs"


INTERRUPTERS = textwrap.dedent('''
    """Callbacks that interrupt a run at the end of epoch 1 (counting from 0), as a job would be."""
    import os
    import signal

    from lightning.pytorch.callbacks import Callback

    import research.atomic


    class StopAfterFirstEpoch(Callback):
        """Stop cleanly once epoch 0's checkpoint is written (the schedule still spans every epoch)."""

        def on_train_epoch_end(self, trainer, pl_module):
            trainer.should_stop = True


    class KillDuringCheckpointWrite(Callback):
        """SIGKILL this process while epoch 1's last.ckpt is in its temporary file, not renamed."""

        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch != 1:
                return
            fsync = research.atomic.os.fsync

            def fsync_or_die(fd):
                if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".last"):
                    os.kill(os.getpid(), signal.SIGKILL)
                fsync(fd)

            research.atomic.os.fsync = fsync_or_die
''')


@pytest.fixture
def interrupters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "interrupters"
    folder.mkdir()
    (folder / "interrupters.py").write_text(INTERRUPTERS)
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.mark.parametrize("config", ["foundation/finetune_full.yaml", "foundation/pretrain_mae.yaml",
                                    "codec/base.yaml"])
def test_stopped_and_resumed_fit_is_bit_identical(config: str, fake_root: Path, tmp_path: Path,
                                                  interrupters: Path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert _fit(_args(config, fake_root, straight, 2), straight) == 0
    stop = "--trainer.callbacks+=interrupters.StopAfterFirstEpoch"
    assert _fit([*_args(config, fake_root, stopped, 2), stop], stopped) == 0
    first = _last(stopped)
    assert torch.load(first, weights_only=False)["epoch"] == 0  # really stopped after epoch 0
    assert _fit([*_args(config, fake_root, stopped, 2), "--ckpt_path", str(first)], stopped) == 0
    _assert_same_state(_last(straight), _last(stopped))


def test_a_run_killed_while_writing_a_checkpoint_resumes_to_the_bit(fake_root: Path,
                                                                      tmp_path: Path,
                                                                      interrupters: Path):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    # the same number of threads as this process, which finishes the run: float sums in another
    # order would differ in the last bits
    threads = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "PYTHONPATH": f"{interrupters}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = [*_args("foundation/finetune_full.yaml", fake_root, killed, 3),
            "--trainer.callbacks+=interrupters.KillDuringCheckpointWrite"]
    killed.mkdir()
    proc = subprocess.run([sys.executable, "-m", "research.cli", *args], env=env, cwd=killed,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert list(killed.rglob(".last*.tmp")), "the kill did not land inside a checkpoint write"
    survivor = _last(killed)
    assert torch.load(survivor, weights_only=False)["epoch"] == 0  # whole, and the previous one
    assert _fit([*_args("foundation/finetune_full.yaml", fake_root, killed, 3), "--ckpt_path",
                 str(survivor)], killed) == 0
    assert _fit(_args("foundation/finetune_full.yaml", fake_root, straight, 3), straight) == 0
    _assert_same_state(_last(straight), _last(killed))
