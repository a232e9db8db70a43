"""The ``satedge`` command: LightningCLI subcommands (fit/validate/test/predict) plus the system's own.

``satedge fit --config experiments/foundation/finetune_full.yaml`` trains from YAML
(``class_path`` / ``init_args``); ``satedge orbit plan --config ...`` builds a contact plan.
Weights & Biases runs offline unless ``WANDB_MODE`` says otherwise.

Every subcommand takes ``--config`` several times (files merged in order), and a YAML may start
from others with ``_base_: <path>`` relative to it (:mod:`research.configfile`). LightningCLI
merges the ``--config`` files itself and takes dotted overrides as ``--trainer.max_epochs 2``;
the system's own subcommands take them as ``--set key.sub=value``.

An error ends the command with at most three lines naming the input and what was expected (exit
code 2); ``--debug`` anywhere on the command line, or ``SATEDGE_DEBUG=1``, shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from argparse import ArgumentError
from collections.abc import Callable
from pathlib import Path

import lightning as L
import yaml
from jsonargparse import Namespace
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from research.configfile import BASE_KEY, load_yaml, read_yaml
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


def _with_bases(value: str) -> str:
    """A ``--config`` value: unchanged, or, for a file with ``_base_``, the YAML of the file merged
    over its bases (a configuration string, which LightningCLI takes as well as a path)."""
    path = Path(value)
    if not path.is_file():
        return value  # a YAML string, or a missing file LightningCLI reports itself
    raw = read_yaml(path, "config file")
    if not (isinstance(raw, dict) and BASE_KEY in raw):
        return value
    return yaml.safe_dump(load_yaml(path, "config file"), sort_keys=False)


def expand_config_bases(argv: list[str]) -> list[str]:
    """``argv`` with each ``--config FILE`` whose YAML names a ``_base_`` replaced by the merged
    YAML (:func:`research.configfile.load_yaml`: mappings merge, lists and scalars replace, as
    when LightningCLI merges several ``--config`` files of one class). Other arguments pass."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config" and i + 1 < len(argv):
            out += [arg, _with_bases(argv[i + 1])]
            i += 2
            continue
        if arg.startswith("--config="):
            arg = "--config=" + _with_bases(arg[len("--config="):])
        out.append(arg)
        i += 1
    return out


class SatedgeCLI(LightningCLI):
    """LightningCLI in which ``--model...`` options on the command line win over a checkpoint's,
    a checkpoint of another task is refused, and every run can resume to the bit.

    With ``--ckpt_path`` Lightning rebuilds the model from the hyper-parameters saved in the
    checkpoint (right: the architecture must match the weights), but it then drops what the user
    asked for on the command line without a word: ``satedge test --ckpt_path X
    --model.init_args.test_views 8`` tested one view. Here those options are applied again on top.
    It also swapped in the checkpoint's task for the configured one, so a classifier checkpoint
    given to a codec config was tested without any codec; that is now an error naming both.
    Every trainer writes checkpoints atomically and stores the random state in them
    (:mod:`research.tasks.resume`).
    """

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        if isinstance(args, dict | Namespace):
            self._command_line = []
            super().parse_arguments(parser, args)
            return
        self._command_line = list(sys.argv[1:] if args is None else args)
        try:
            expanded = expand_config_bases(self._command_line)
        except (ValueError, FileNotFoundError) as err:
            parser.error(str(err))
        if expanded == self._command_line:
            super().parse_arguments(parser, args)
        else:  # the same parse, without Lightning's warning that both argv and args were given
            self.config = parser.parse_args(expanded)

    def _parse_ckpt_path(self) -> None:
        self._check_ckpt_task()
        super()._parse_ckpt_path()
        subcommand = self.config.get("subcommand")
        flags = model_flags(self._command_line)
        if subcommand and flags and self.config[subcommand].get("ckpt_path"):
            parser = self._subcommand_parsers[subcommand]
            self.config[subcommand] = parser.parse_args(flags, namespace=self.config[subcommand].clone())


    def _check_ckpt_task(self) -> None:
        """Refuse ``--ckpt_path`` holding a different task class than the configured model."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        import torch

        try:
            hparams = torch.load(ckpt_path, weights_only=True, map_location="cpu").get(
                "hyper_parameters", {})
        except Exception as err:  # noqa: BLE001 - any unpickling failure: name the file
            raise ValueError(f"ckpt_path: {ckpt_path} is not a readable Lightning checkpoint "
                             f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from err
        held = hparams.get("_class_path")
        model = self.config[subcommand].get("model")
        wanted = model.get("class_path") if isinstance(model, Namespace | dict) else None
        if held and wanted and held != wanted:
            raise ValueError(f"ckpt_path: {ckpt_path} holds a {held.rsplit('.', 1)[-1]} checkpoint "
                             f"but the config's model is {wanted} (give a checkpoint of that task, "
                             "or the matching config)")

    def _instantiate_trainer(self, config: dict, callbacks: list) -> L.Trainer:
        from lightning.fabric.plugins import CheckpointIO

        from research.tasks.resume import AtomicCheckpointIO, RandomStateCheckpoint

        given = config.get("callbacks") or []
        given = given if isinstance(given, list) else [given]
        if not any(isinstance(c, RandomStateCheckpoint) for c in [*given, *callbacks]):
            callbacks = [*callbacks, RandomStateCheckpoint()]
        plugins = config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, list | tuple) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]
        return super()._instantiate_trainer(config, callbacks)


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
        parser_kwargs={"exit_on_error": False},  # errors reach main(), which shortens them
        # From the console script argv *is* sys.argv[1:]; passing it again makes Lightning warn
        # that both were given.
        args=None if argv == sys.argv[1:] else argv,
    )


DEBUG_FLAG, DEBUG_ENV = "--debug", "SATEDGE_DEBUG"
_STRUCTURE = re.compile(r"(Does not validate against|Subtypes:|Errors:|Given value|- Problem with given"
                        r"|tip: |usage: )")
_PARSER_KEY = re.compile(r'(?:error: )?Parser key "([^"]+)":')


def short_error(err: BaseException, max_lines: int = 2) -> str:
    """The first reason in ``err``'s message, prefixed with the dotted config key it concerns.

    jsonargparse reports a bad value as a tree (``Parser key "model"`` > the class it tried >
    ``Parser key "lmbda"`` > the reason, then the other union members it also tried); the user
    needs the key path and the first reason, not the tree.
    """
    keys, reasons = [], []
    for line in (raw.strip() for raw in str(err).splitlines()):
        match = _PARSER_KEY.match(line)
        if match:
            keys.append(match.group(1))
        elif line and not _STRUCTURE.match(line):
            reasons.append(line.removeprefix("- ").removeprefix("error: "))
        if reasons and keys:
            break
    text = " ".join(reasons[:max_lines]) or type(err).__name__
    return f"{'.'.join(keys)}: {text}" if keys else text


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``satedge`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return int(_subcommand(argv[0])(argv[1:]) or 0)
        run_lightning(argv)
        return 0
    except (ArgumentError, ValueError, TypeError, KeyError, OSError, RuntimeError) as err:
        if debug:
            raise
        command = " ".join(["satedge", *argv[:1]]) if argv else "satedge"
        print(f"{command}: error: {short_error(err)}\n(add {DEBUG_FLAG} for the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
