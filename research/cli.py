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
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

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


def model_flags(argv: list[str]) -> list[str]:
    """The ``--model...`` options of a command line, each with its value (``--k v`` or ``--k=v``)."""
    flags: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--model" or arg.startswith("--model."):
            step = 1 if "=" in arg else 2
            flags += argv[i : i + step]
            i += step
        else:
            i += 1
    return flags


class SatedgeCLI(LightningCLI):
    """LightningCLI in which ``--model...`` options on the command line win over a checkpoint's.

    With ``--ckpt_path`` Lightning rebuilds the model from the hyper-parameters saved in the
    checkpoint (right: the architecture must match the weights), but it then drops what the user
    asked for on the command line without a word: ``satedge test --ckpt_path X
    --model.init_args.test_views 8`` tested one view. Here those options are applied again on top.
    """

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        self._command_line = [] if isinstance(args, dict) else list(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        super()._parse_ckpt_path()
        subcommand = self.config.get("subcommand")
        flags = model_flags(self._command_line)
        if subcommand and flags and self.config[subcommand].get("ckpt_path"):
            parser = self._subcommand_parsers[subcommand]
            self.config[subcommand] = parser.parse_args(flags, namespace=self.config[subcommand].clone())


def run_lightning(argv: list[str]) -> LightningCLI:
    """Run LightningCLI over any ``BaseTask`` and any ``LightningDataModule`` named in the YAML."""
    os.environ.setdefault("WANDB_MODE", "offline")  # W&B never asks for a login unless told to
    return SatedgeCLI(
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
