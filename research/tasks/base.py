"""BaseTask: the LightningModule every satedge task extends (torchgeo's trainer pattern).

``__init__`` saves the typed hyper-parameters and calls three small hooks; subclasses implement
``configure_models`` and the step methods. Tasks extend ``BaseTask`` only, never each other: what
the classifying tasks share is in :mod:`research.tasks.classification` as functions, so each task
saves exactly its own constructor arguments. Optimisation is AdamW with linear warm-up and cosine
decay over the trainer's total steps.
"""

from __future__ import annotations

import math
import re

import lightning as L
import torch
from torch.optim.lr_scheduler import LambdaLR


class BaseTask(L.LightningModule):
    """Shared optimisation and hook structure; metrics are logged as ``{stage}/{name}``."""

    def __init__(self, **modules: torch.nn.Module | None) -> None:
        """Build the task; ``modules`` (constructor arguments that are modules, e.g. the link at
        the cut) go to ``configure_models``.

        Handed over rather than kept: before ``Module.__init__`` a task cannot hold a module, and
        as the task's own attribute its weights would be saved twice (the model registers them).
        """
        super().__init__()
        self.configure_models(**modules)
        self.configure_losses()
        self.configure_metrics()

    def configure_models(self, **modules: torch.nn.Module | None) -> None:
        raise NotImplementedError

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Name the task class in the saved hyper-parameters, as LightningCLI does for its runs.

        ``satedge test --ckpt_path`` rebuilds the model from them and needs the class; a task
        trained by a script (the codec and SNN sweeps) would otherwise leave it out.
        """
        hparams = checkpoint.get("hyper_parameters")
        if isinstance(hparams, dict):
            hparams.setdefault("_class_path", f"{type(self).__module__}.{type(self).__qualname__}")

    def first_train_images(self, batches: int) -> torch.Tensor | None:
        """The inputs of the first ``batches`` training batches, prepared as for evaluation and on
        the weights' device (calibration data for thresholds and conversions); ``None`` without
        a trainer and data module.

        Not ``self.device``: during ``setup`` Lightning reports the target device before it
        moves the weights.
        """
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is None:
            return None
        out = []
        for i, batch in enumerate(dm.train_dataloader()):
            if i >= batches:
                break
            if hasattr(dm, "prepare_batch"):
                batch = dm.prepare_batch(batch, train=False)
            out.append(batch[0])
        return torch.cat(out).to(next(self.parameters()).device)

    def configure_losses(self) -> None:
        """Optional: build loss modules."""

    def configure_metrics(self) -> None:
        """Optional: build torchmetrics collections."""

    def parameter_groups(self) -> list[dict]:
        """Trainable parameters, without weight decay on biases, norms and embeddings.

        With a ``layer_decay`` hyper-parameter below 1 (layer-wise learning-rate decay, the usual
        recipe for fine-tuning MAE encoders), block ``i`` of ``depth`` trains at
        ``lr * layer_decay ** (depth - i)``, the patch embedding at ``layer_decay ** (depth + 1)``
        and the head and final norm at the full rate: early, general layers move least.
        """
        layer_decay = float(self.hparams.get("layer_decay", 1.0))
        depth = _depth(self)
        groups: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            no_decay = p.ndim <= 1 or "pos_embed" in name or "token" in name
            layer = layer_id(name, depth) if layer_decay != 1.0 else depth + 1
            groups.setdefault((layer, no_decay), []).append(p)
        return [
            {
                "params": params,
                "weight_decay": 0.0 if no_decay else self.hparams.weight_decay,
                "lr": self.hparams.lr * layer_decay ** (depth + 1 - layer),
            }
            for (layer, no_decay), params in sorted(groups.items())
        ]

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(self.parameter_groups(), lr=self.hparams.lr, betas=(0.9, 0.95))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(int(self.hparams.warmup_epochs * total / max(1, self.trainer.max_epochs or 1)), total // 2)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"},
        }


_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.")


def layer_id(name: str, depth: int) -> int:
    """Depth of a ViT parameter for layer-wise decay: 0 = embeddings, ``i + 1`` = block ``i``, ``depth + 1`` = the rest."""
    match = _BLOCK.search(name)
    if match:
        return int(match.group(1)) + 1
    if any(key in name for key in ("patch_embed", "pos_embed", "cls_token", "reg_token")):
        return 0
    return depth + 1


def _depth(module: torch.nn.Module) -> int:
    """Number of transformer blocks among ``module``'s parameters (0 when it has none)."""
    ids = [int(m.group(1)) for name, _ in module.named_parameters() if (m := _BLOCK.search(name))]
    return max(ids) + 1 if ids else 0
