"""MAEPretrainTask: self-supervised masked-autoencoder pre-training on unlabeled images."""

from __future__ import annotations

import torch

from research.models.mae import MaskedAutoencoder
from research.models.presets import build_backbone
from research.tasks.base import BaseTask


class MAEPretrainTask(BaseTask):
    """Pre-train the backbone as an MAE; labels in the batch are ignored.

    Args:
        backbone: preset name (``satvit_tiny``, ``satvit_small``, ``satvit_base``).
        in_chans: input bands.
        mask_ratio: fraction of patches hidden from the encoder.
        decoder_dim: width of the light decoder.
        decoder_depth: blocks in the decoder.
        decoder_heads: attention heads in the decoder.
        norm_pix_loss: regress per-patch normalised pixels (MAE's better target).
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_epochs: linear warm-up length.
    """

    def __init__(
        self,
        backbone: str = "satvit_small",
        in_chans: int = 3,
        mask_ratio: float = 0.75,
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        norm_pix_loss: bool = True,
        lr: float = 1.5e-3,
        weight_decay: float = 0.05,
        warmup_epochs: float = 1.0,
    ) -> None:
        self.save_hyperparameters()
        super().__init__()

    def configure_models(self) -> None:
        hp = self.hparams
        encoder = build_backbone(hp.backbone, num_classes=0, in_chans=hp.in_chans)
        self.model = MaskedAutoencoder(
            encoder, hp.decoder_dim, hp.decoder_depth, hp.decoder_heads, hp.mask_ratio, hp.norm_pix_loss
        )

    def _step(self, batch: list[torch.Tensor], stage: str) -> torch.Tensor:
        images = batch[0]
        loss = self.model(images)["loss"]
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, on_step=stage == "train", batch_size=len(images))
        return loss

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The pre-trained backbone, ready for ``load_backbone_weights``."""
        return self.model.encoder.state_dict()
