"""The ``satedge`` command: LightningCLI subcommands (fit/validate/test/predict) plus the system's own.

``satedge fit --config experiments/finetune_full.yaml`` trains from YAML (``class_path`` /
``init_args``); ``satedge orbit plan --config ...`` builds a contact plan. Weights & Biases runs
offline unless ``WANDB_MODE`` says otherwise.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

import lightning as L
from lightning.pytorch.cli import LightningCLI

from research.tasks.base import BaseTask

# Non-Lightning subcommands: name -> "module:function" taking argv and returning an exit code.
SUBCOMMANDS: dict[str, str] = {
    "orbit": "research.orbit.cli:main",
    "federate": "research.fed.cli:main",
    "profile": "research.models.cli:main",
    "serve": "research.serving.cli:main",
    "evaluate": "research.eval.cli:main",
    "demo": "research.demo:main",
}


def _subcommand(name: str) -> Callable[[list[str]], int]:
    module, func = SUBCOMMANDS[name].split(":")
    return getattr(importlib.import_module(module), func)


def run_lightning(argv: list[str]) -> LightningCLI:
    """Run LightningCLI over any ``BaseTask`` and any ``LightningDataModule`` named in the YAML."""
    os.environ.setdefault("WANDB_MODE", "offline")  # W&B never asks for a login unless told to
    return LightningCLI(
        model_class=BaseTask,
        datamodule_class=L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        # From the console script argv *is* sys.argv[1:]; passing it again makes Lightning warn
        # that both were given.
        args=None if argv == sys.argv[1:] else argv,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``satedge`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return int(_subcommand(argv[0])(argv[1:]) or 0)
    run_lightning(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
