"""BaseTask: the LightningModule every satedge task extends (torchgeo's trainer pattern).

``__init__`` saves the typed hyper-parameters and calls three small hooks; subclasses implement
``configure_models`` and the step methods. Optimisation is AdamW with linear warm-up and cosine
decay over the trainer's total steps.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.optim.lr_scheduler import LambdaLR


class BaseTask(L.LightningModule):
    """Shared optimisation and hook structure; metrics are logged as ``{stage}/{name}``."""

    def __init__(self) -> None:
        super().__init__()
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()

    def configure_models(self) -> None:
        raise NotImplementedError

    def configure_losses(self) -> None:
        """Optional: build loss modules."""

    def configure_metrics(self) -> None:
        """Optional: build torchmetrics collections."""

    def parameter_groups(self) -> list[dict]:
        """Trainable parameters, without weight decay on biases, norms and embeddings."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or "pos_embed" in name or "token" in name else decay).append(p)
        return [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
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
