"""ClassificationTask: fine-tune the split ViT (head-only, LoRA or full) on a labelled data set.

Also the classification pieces the other classifying tasks (``CodecTask``, ``SpikingTask``) share,
as functions rather than a base class: each task takes only its own constructor arguments, so
LightningCLI and ``load_from_checkpoint`` rebuild it from its own saved hyper-parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchvision.transforms import v2

from encoders.base import LinkModule
from research.data.features import dihedral_view
from research.models.finetune import configure_finetuning
from research.models.presets import build_backbone
from research.models.split_vit import SplitViT
from research.models.weights import load_backbone_weights
from research.tasks.base import BaseTask


class ClassificationTask(BaseTask):
    """Fine-tune a :class:`SplitViT` for classification.

    Args:
        backbone: preset name (``satvit_tiny``, ``satvit_small``, ``satvit_base``).
        num_classes: number of classes.
        in_chans: input bands.
        split_index: blocks on the satellite side of the cut (0 = after patch embedding).
        head_placement: ``satellite`` (the paper's split) or ``ground``.
        finetune: ``head``, ``lora`` or ``full``.
        lora_rank: LoRA rank (``finetune=lora``).
        lora_alpha: LoRA scaling numerator.
        pretrained: local weights to start from (MAE or classification checkpoint, timm/torch
            state dict); ``None`` trains from scratch.
        link: module at the cut (identity when ``None``); any ``encoders.LinkModule``.
        drop_path_rate: stochastic depth.
        label_smoothing: cross-entropy label smoothing.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_epochs: linear warm-up length.
        layer_decay: layer-wise learning-rate decay (1 = off; 0.65-0.75 is the MAE recipe): block
            ``i`` trains at ``lr * layer_decay ** (depth - i)``.
        test_views: dihedral views (1..8) whose softmax outputs are averaged at test and predict
            time (test-time augmentation; training already sees all 8). 1 = the image as given.
            Validation stays single-view so checkpoint selection does not depend on it.
        mixup_alpha: MixUp Beta(alpha, alpha) on training batches (0 = off; 0.8 is the MAE/DeiT
            fine-tuning recipe). With ``cutmix_alpha`` too, each batch gets one of the two.
        cutmix_alpha: CutMix Beta(alpha, alpha) on training batches (0 = off; 1.0 in the recipe).
            Training accuracy is then scored against each image's own label (its share of the
            mix varies), so it reads lower than without mixing.
    """

    def __init__(
        self,
        backbone: str = "satvit_small",
        num_classes: int = 10,
        in_chans: int = 3,
        split_index: int = 0,
        head_placement: str = "satellite",
        finetune: str = "full",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        pretrained: str | None = None,
        link: LinkModule | None = None,
        drop_path_rate: float = 0.1,
        label_smoothing: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_epochs: float = 1.0,
        layer_decay: float = 1.0,
        test_views: int = 1,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
    ) -> None:
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"layer_decay={layer_decay}; expected a factor in (0, 1] (1 = the same rate everywhere)")
        if not 1 <= test_views <= 8:
            raise ValueError(f"test_views={test_views}; expected 1..8 dihedral views (1 = no test-time augmentation)")
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(
                f"mixup_alpha={mixup_alpha}, cutmix_alpha={cutmix_alpha}; expected Beta parameters >= 0 (0 = off)"
            )
        self.save_hyperparameters(ignore=["link"])  # a module: its weights are in the state dict
        super().__init__(link=link)

    def configure_models(self, link: LinkModule | None = None) -> None:
        hp = self.hparams
        model = SplitViT(task_backbone(hp), hp.split_index, hp.head_placement, link)
        self.model = configure_finetuning(model, hp.finetune, hp.lora_rank, hp.lora_alpha)

    def configure_losses(self) -> None:
        hp = self.hparams
        self.criterion = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
        self.batch_mixer = batch_mixer(hp.num_classes, hp.mixup_alpha, hp.cutmix_alpha)

    def configure_metrics(self) -> None:
        self.train_metrics, self.val_metrics, self.test_metrics = accuracy_metrics(self.hparams.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def view_averaged_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Log of the softmax averaged over ``test_views`` dihedral views (valid logits for CE and argmax)."""
        views = self.hparams.test_views
        if views == 1:
            return self.model(images)
        probs = torch.stack([self.model(dihedral_view(images, v)).softmax(dim=1) for v in range(views)])
        return probs.mean(dim=0).log()

    def _step(self, batch: list[torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch
        targets = labels
        if stage == "train" and self.batch_mixer is not None:
            images, targets = self.batch_mixer(images, labels)  # soft targets, one row per image
        logits = self.view_averaged_logits(images) if stage == "test" else self.model(images)
        loss = self.criterion(logits, targets)
        log_classification(self, stage, logits, labels, loss)
        return loss

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.view_averaged_logits(batch[0]).argmax(dim=1)


def task_backbone(hp: Mapping[str, Any]) -> VisionTransformer:
    """The preset ViT a classifying task starts from: its ``backbone``, ``num_classes``,
    ``in_chans`` and ``drop_path_rate``, with the ``pretrained`` weights loaded when given."""
    vit = build_backbone(hp["backbone"], hp["num_classes"], hp["in_chans"], hp["drop_path_rate"])
    if hp["pretrained"]:
        load_backbone_weights(vit, hp["pretrained"])
    return vit


def accuracy_metrics(num_classes: int) -> tuple[MetricCollection, MetricCollection, MetricCollection]:
    """Top-1 accuracy for the train, val and test stages, logged as ``{stage}/acc`` by every
    classifying task (one metric name for checkpoint monitors and result tables)."""
    metrics = MetricCollection({"acc": MulticlassAccuracy(num_classes, average="micro")})
    return metrics.clone(prefix="train/"), metrics.clone(prefix="val/"), metrics.clone(prefix="test/")


def log_classification(task: L.LightningModule, stage: str, logits: torch.Tensor, labels: torch.Tensor,
                       loss: torch.Tensor) -> None:
    """Update ``task``'s ``{stage}_metrics`` and log them with ``{stage}/loss`` (per step too in training).

    Accuracy is scored against the hard ``labels`` even when the loss used mixed soft targets.
    """
    metrics = getattr(task, f"{stage}_metrics")
    metrics.update(logits, labels)
    n = len(labels)
    task.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, batch_size=n)
    task.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)


def batch_mixer(num_classes: int, mixup_alpha: float, cutmix_alpha: float) -> v2.Transform | None:
    """MixUp and/or CutMix for a training batch (torchvision's; one of the two per batch), or ``None``.

    Both regularise a fine-tuned ViT that has learnt its training set (the usual MAE fine-tuning
    recipe); the transform returns the mixed images and the matching soft targets.
    """
    mixers: list[v2.Transform] = []
    if mixup_alpha > 0:
        mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)
