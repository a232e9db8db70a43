"""CodecTask: train a link module at the cut of the split ViT for the task, not for reconstruction.

The loss is cross-entropy plus ``lmbda`` times the estimated bits per inference (from the codec's
likelihoods), optionally plus a distillation term towards the uncompressed split model. The
entropy-model quantiles train with their own optimizer (CompressAI's pattern), so the task uses
manual optimisation. Validation reports estimated bits; test sends every batch through the real
bytes (``decompress(compress(tokens))``) and reports real bytes, estimated bits and their gap.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

import snn.link  # noqa: F401  (registers the "spike" link before any codec is built by name)
from encoders.base import LinkModule
from encoders.rate import estimated_bits, payload_bits
from encoders.registry import build_for_cut
from encoders.training import split_parameters
from research.models.finetune import configure_finetuning
from research.models.presets import get_preset
from research.models.split_vit import SplitViT
from research.tasks.base import BaseTask
from research.tasks.classification import accuracy_metrics, log_classification, task_backbone
from snn.blocks import ATTENTIONS, SpikingBlock
from snn.neurons import recording_rates

__all__ = ["CODEC_OPTIONS", "CodecTask", "build_task_codec"]

CodecFinetune = Literal["frozen", "head", "lora", "full"]
CutDistillOn = Literal["tokens", "decoded"]
# cut_distill_on -> the forward_parts output the cut distillation reads
CUT_DISTILL_TARGETS: dict[str, str] = {"tokens": "tokens", "decoded": "y_hat"}
TEACHER_PREFIX = "teacher."  # state-dict keys of the distillation teacher
# Buffers of CompressAI entropy models whose size is only known after ``update()``.
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
CODEC_OPTIONS = (
    "latent_dim", "merge_tokens", "hidden_dim", "hyper_dim", "hyper_hidden_dim", "num_steps",
    "granularity",
)
"""The task's flat codec arguments, offered to every link's ``cut_kwargs`` (each takes its own)."""


def build_task_codec(hparams: Any) -> LinkModule:
    """The link module a ``CodecTask`` with hyper-parameters ``hparams`` holds at its cut, sized
    for the backbone's tokens there (also to rebuild one with other ``codec_options``). Options a
    checkpoint saved before they existed take ``CodecTask``'s defaults."""
    defaults = {name: param.default
                for name, param in inspect.signature(CodecTask.__init__).parameters.items()}
    hp = {**defaults, **dict(hparams)}
    preset = get_preset(hp["backbone"])
    num_tokens = (preset.img_size // preset.patch_size) ** 2
    options = {key: hp[key] for key in CODEC_OPTIONS}
    return build_for_cut(hp["codec"], preset.embed_dim, num_tokens, options, hp["codec_options"])


class CodecTask(BaseTask):
    """Train a codec (and optionally the backbone) at ``split_index`` for classification at a rate.

    Args:
        backbone: Preset name (``satvit_tiny``, ``satvit_small``, ``satvit_base``).
        num_classes: Number of classes.
        in_chans: Input bands.
        split_index: Blocks on the satellite side of the cut (0 = after patch embedding).
        head_placement: ``satellite`` (the paper's split) or ``ground``.
        finetune: What trains besides the codec: ``frozen`` (nothing), ``head``, ``lora``, ``full``.
        lora_rank: LoRA rank (``finetune=lora``).
        lora_alpha: LoRA scaling numerator.
        pretrained: Weights to start from, ideally a fine-tuned classifier (e.g.
            ``checkpoints/satvit_small_full_mae_long.ckpt``, head included); also the distillation teacher.
        codec: Registered link name (``encoders.list_links()``), e.g. ``factorized``.
        latent_dim: Learned codecs: latent channels per coded unit; ``spike``: channels per token.
        merge_tokens: Learned codecs: code ``k x k`` neighbouring tokens as one unit.
        hidden_dim: Learned codecs: transform width (default: the token width); ``spike``: the
            width of its MLP ground decoder (default: a linear read of the firing rates).
        hyper_dim: ``hyperprior``: hyper-latent channels.
        hyper_hidden_dim: ``hyperprior``: hyper transform width.
        num_steps: ``spike``: timesteps.
        granularity: ``int8``/``int4``: one offset/step per ``token`` or per ``sample``.
        codec_options: Further constructor arguments of the link, set exactly (e.g.
            ``{zlib_level: 6}``), for options the flat arguments above do not cover; a name the
            link does not take is an error.
        lmbda: Rate weight: loss = CE + ``lmbda`` * estimated bits per inference (+ distillation).
        lmbdas: Variable-rate links (``num_rates > 1`` in ``codec_options``): one rate weight per
            rate level, finest last; every training step draws a level and uses its weight
            (``lmbda`` is then unused). One model then serves every level.
        rate_index: Rate level of a variable-rate link outside training (validation, test,
            predict); default: the finest.
        distill_weight: Weight of the KL term towards the uncompressed split model (0: none).
        distill_temperature: Softmax temperature of the distillation term.
        feature_distill_weight: Weight of the mean squared error between the pooled features the
            head sees and the uncompressed model's, over their variance (needs
            ``distill_weight > 0``, which builds the teacher): a dense target per image, where
            the teacher's near one-hot predictions say little more than the label.
        cut_distill_weight: Weight of the same scale-free error on the tokens at the cut (needs
            the teacher): a local target for a satellite part that changes (spiking blocks).
        cut_distill_on: Which tokens that error reads: ``tokens``, the satellite part's output
            before the link (it trains only the on-board blocks), or ``decoded``, the link's
            output that the ground receives (it also trains the link towards the teacher's
            tokens, which a link behind frozen blocks otherwise learns only through the task).
        spiking_blocks: On-board blocks (indices below ``split_index``) that become
            :class:`snn.blocks.SpikingBlock` (converted from the pretrained ANN blocks on
            ``calib_batches`` training batches, then trained with surrogate gradients).
        block_steps: Timesteps ``T`` of the spiking blocks.
        train_spiking_blocks: Train the spiking blocks (False: they stay as converted or as
            ``init_from`` left them, e.g. while a link learns their tokens).
        spiking_attention: ``ssa`` (spiking self-attention) or ``ann`` (softmax attention kept).
        rate_penalty: Weight of the mean firing rate of the spiking blocks' neurons in the loss
            (spikes are the energy).
        calib_batches: Training batches that calibrate the spiking blocks' thresholds.
        init_from: Checkpoints (Lightning ``.ckpt`` or ``{"state_dict": ...}``) whose ``model.*``
            weights initialise this task wherever names and shapes match, in order: e.g. spiking
            blocks distilled behind the identity link, then a spike link trained on the ANN cut
            tokens, before both train together. Spiking blocks they initialise are not
            re-calibrated.
        drop_path_rate: Stochastic depth of the student backbone.
        label_smoothing: Cross-entropy label smoothing.
        lr: Peak learning rate of the main optimizer (codec and trainable backbone parts).
        aux_lr: Learning rate of the entropy-model quantiles' own optimizer.
        weight_decay: AdamW weight decay of the main optimizer.
        warmup_epochs: Linear warm-up length.
        clip_grad_norm: Gradient-norm clip of the main optimizer (CompressAI uses 1.0; 0: none).
    """

    def __init__(
        self,
        backbone: str = "satvit_small",
        num_classes: int = 10,
        in_chans: int = 3,
        split_index: int = 0,
        head_placement: Literal["satellite", "ground"] = "satellite",
        finetune: CodecFinetune = "frozen",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        pretrained: str | None = None,
        codec: str = "factorized",
        latent_dim: int = 16,
        merge_tokens: int = 1,
        hidden_dim: int | None = None,
        hyper_dim: int = 8,
        hyper_hidden_dim: int = 64,
        num_steps: int = 8,
        granularity: Literal["token", "sample"] = "token",
        codec_options: dict[str, Any] | None = None,
        lmbda: float = 1e-3,
        lmbdas: list[float] | None = None,
        rate_index: int | None = None,
        distill_weight: float = 0.0,
        distill_temperature: float = 1.0,
        feature_distill_weight: float = 0.0,
        cut_distill_weight: float = 0.0,
        cut_distill_on: CutDistillOn = "tokens",
        spiking_blocks: list[int] | None = None,
        block_steps: int = 2,
        train_spiking_blocks: bool = True,
        spiking_attention: str = "ssa",
        rate_penalty: float = 0.0,
        calib_batches: int = 4,
        init_from: list[str] | None = None,
        drop_path_rate: float = 0.0,
        label_smoothing: float = 0.0,
        lr: float = 1e-3,
        aux_lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_epochs: float = 0.0,
        clip_grad_norm: float = 1.0,
    ) -> None:
        bad = [i for i in spiking_blocks or [] if not 0 <= i < split_index]
        if bad:
            raise ValueError(
                f"spiking_blocks={bad} are not on board; with split_index={split_index} the "
                f"satellite holds blocks {list(range(split_index))}")
        if spiking_blocks and (not isinstance(block_steps, int) or block_steps < 1):
            raise ValueError(f"block_steps={block_steps!r}; spiking blocks need an integer T >= 1")
        if spiking_attention not in ATTENTIONS:
            raise ValueError(f"spiking_attention={spiking_attention!r}; expected one of "
                             f"{list(ATTENTIONS)}")
        if rate_penalty < 0:
            raise ValueError(f"rate_penalty={rate_penalty}; expected >= 0")
        if cut_distill_on not in CUT_DISTILL_TARGETS:
            raise ValueError(f"cut_distill_on={cut_distill_on!r}; expected one of "
                             f"{list(CUT_DISTILL_TARGETS)}")
        self._calibrated = False
        self._initialised: set[int] = set()  # spiking blocks whose weights came from init_from
        self.save_hyperparameters()
        super().__init__()
        self.automatic_optimization = False  # two optimizers: main and entropy-model quantiles

    # ----------------------------------------------------------------- hooks
    def configure_models(self) -> None:
        hp = self.hparams
        vit = task_backbone(hp)
        self.teacher: SplitViT | None = None
        if hp.distill_weight > 0:
            # The uncompressed split model: same weights, identity link, never trained.
            self.teacher = SplitViT(copy.deepcopy(vit), hp.split_index, hp.head_placement)
            self.teacher.requires_grad_(False).eval()
        # The ANN blocks the spiking ones are converted from (kept out of the module tree).
        self._ann_blocks = [copy.deepcopy(vit.blocks[i]) for i in hp.spiking_blocks or []]
        for i in hp.spiking_blocks or []:  # the structure; weights come from calibrate()
            ann = vit.blocks[i]
            vit.blocks[i] = SpikingBlock(vit.embed_dim, ann.attn.num_heads, ann.mlp.fc1.out_features,
                                         hp.block_steps, hp.spiking_attention, eps=ann.norm1.eps)
        model = SplitViT(vit, hp.split_index, hp.head_placement, self.build_codec())
        self._check_options(model.link)
        mode = "head" if hp.finetune == "frozen" else hp.finetune
        self.model = configure_finetuning(model, mode, hp.lora_rank, hp.lora_alpha)
        if hp.finetune == "frozen":
            for module in self.model.head_modules():
                module.requires_grad_(False)
            self.model.link.requires_grad_(True)
        for block in self.spiking_blocks():
            block.requires_grad_(hp.train_spiking_blocks)
        for path in hp.init_from or []:
            self._init_from(path)

    def _init_from(self, path: str) -> None:
        """Load the ``model.*`` weights of ``path`` that match this task's names and shapes.

        A spiking block takes weights only from a checkpoint where that block is spiking too: an
        ANN block has the same names and shapes (``attn.qkv``, ``mlp.fc1``, ...) but unscaled
        weights, and must not overwrite a converted one.
        """
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        except (OSError, KeyError, RuntimeError) as err:
            raise ValueError(f"init_from {path!r}: expected a checkpoint with a 'state_dict' "
                             f"({err})") from err
        spiking_here = set(self.hparams.spiking_blocks or [])
        spiking_there = {i for i in spiking_here
                         if f"model.vit.blocks.{i}.enc2.pos.threshold" in state}

        def takes(key: str) -> bool:
            if not key.startswith("model.vit.blocks."):
                return True
            block = int(key.split(".")[3])
            return block not in spiking_here or block in spiking_there

        own = self.state_dict()
        match = {k: v for k, v in state.items() if k.startswith("model.") and k in own
                 and own[k].shape == v.shape and takes(k)}
        if not match:
            raise ValueError(f"init_from {path!r}: no model weight matches this task's")
        self.load_state_dict(match, strict=False)
        self._initialised |= spiking_there
        self._calibrated = spiking_here <= self._initialised

    def build_codec(self) -> LinkModule:
        """The link module named by ``codec``, sized for the backbone's tokens at the cut.

        Built here from the saved hyper-parameters rather than passed in, so a checkpoint alone
        rebuilds the task. The registry builds it: the link's own ``cut_kwargs`` picks from
        ``CODEC_OPTIONS``, and ``codec_options`` are set last.
        """
        return build_task_codec(self.hparams)

    def _check_options(self, link: LinkModule) -> None:
        """Options that only make sense together: one rate weight per level of a variable-rate link,
        a level the link has, and a teacher for feature distillation."""
        hp, levels = self.hparams, getattr(link, "num_rates", 1)
        if hp.lmbdas is not None and len(hp.lmbdas) != levels:
            raise ValueError(f"lmbdas has {len(hp.lmbdas)} rate weights but the {hp.codec!r} link "
                             f"has {levels} rate level(s) (set codec_options.num_rates)")
        if levels > 1 and hp.lmbdas is None:
            raise ValueError(f"the {hp.codec!r} link has {levels} rate levels: give lmbdas, one "
                             "rate weight per level (finest last)")
        if hp.cut_distill_weight > 0 and hp.distill_weight <= 0:
            raise ValueError(f"cut_distill_weight={hp.cut_distill_weight} needs the teacher "
                             f"that distill_weight > 0 builds (got distill_weight="
                             f"{hp.distill_weight})")
        if hp.feature_distill_weight > 0 and hp.distill_weight <= 0:
            raise ValueError(f"feature_distill_weight={hp.feature_distill_weight} needs the teacher "
                             "that distill_weight > 0 builds (got distill_weight="
                             f"{hp.distill_weight})")
        if hp.rate_index is not None and not 0 <= hp.rate_index < levels:
            raise ValueError(f"rate_index={hp.rate_index}; the {hp.codec!r} link has {levels} "
                             f"rate level(s), 0..{levels - 1}")

    def spiking_blocks(self) -> list[SpikingBlock]:
        """The on-board spiking blocks, in order."""
        return [b for b in self.model.vit.blocks if isinstance(b, SpikingBlock)]

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> None:
        """Convert the ANN blocks into the spiking ones, thresholds set on normalised ``images``.

        Why not in ``configure_models``: thresholds need activations of real data. Each block
        is calibrated on what the (spiking) blocks before it produce. A checkpoint restored
        afterwards overrides what this sets.
        """
        hp = self.hparams
        was_training = self.training
        self.eval()
        try:
            x = self.model.embed(images)
            ann = dict(zip(hp.spiking_blocks or [], self._ann_blocks, strict=True))
            for i, block in enumerate(self.model.vit.blocks[: hp.split_index]):
                if i in ann and i not in self._initialised:  # init_from blocks stay as loaded
                    fresh = SpikingBlock.from_block(ann[i].to(x.device), x, hp.block_steps,
                                                    hp.spiking_attention)
                    block.load_state_dict(fresh.state_dict())
                x = block(x)
        finally:
            self.train(was_training)
        self._calibrated = True

    def setup(self, stage: str) -> None:
        """Calibrate spiking blocks on the first ``calib_batches`` training batches."""
        if self._calibrated or not self.spiking_blocks():
            return
        images = self.first_train_images(self.hparams.calib_batches)
        if images is not None:
            self.calibrate(images)

    @property
    def variable_rate(self) -> bool:
        """The link holds several rate levels (gain units) trained together."""
        return getattr(self.link, "num_rates", 1) > 1

    def _eval_rate(self) -> None:
        """Outside training, code at ``rate_index`` (default: the finest level)."""
        if self.variable_rate:
            index = self.hparams.rate_index
            self.link.set_rate(self.link.num_rates - 1 if index is None else index)

    def configure_losses(self) -> None:
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.hparams.label_smoothing)

    def configure_metrics(self) -> None:
        self.train_metrics, self.val_metrics, self.test_metrics = accuracy_metrics(self.hparams.num_classes)
        self.test_forward_acc = MulticlassAccuracy(self.hparams.num_classes, average="micro")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    @property
    def link(self) -> LinkModule:
        """The link module at the cut."""
        return self.model.link

    def train(self, mode: bool = True) -> CodecTask:
        """Keep the teacher in eval mode (no dropout or stochastic depth) whatever Lightning sets."""
        super().train(mode)
        if getattr(self, "teacher", None) is not None:
            self.teacher.eval()
        return self

    # ----------------------------------------------------------------- optimisation
    def main_and_aux_parameters(self) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        """Trainable parameters as ``(main, aux)``; ``aux`` are the entropy-model quantiles."""
        return split_parameters(self.model)

    def parameter_groups(self) -> list[dict]:
        """The base groups (weight decay split) without the quantiles, which have their own optimizer."""
        aux = {id(p) for p in self.main_and_aux_parameters()[1]}
        groups = super().parameter_groups()
        return [{**g, "params": [p for p in g["params"] if id(p) not in aux]} for g in groups]

    def configure_optimizers(self) -> Any:
        conf = super().configure_optimizers()
        _, aux = self.main_and_aux_parameters()
        if not aux:
            return conf
        aux_optimizer = torch.optim.Adam(aux, lr=self.hparams.aux_lr)
        return [conf["optimizer"], aux_optimizer], [conf["lr_scheduler"]]

    def satellite_part_trains(self) -> bool:
        """Whether any weight before the cut trains (then cached cut tokens would go stale)."""
        vit = self.model.vit
        before = [vit.patch_embed, *vit.blocks[: self.hparams.split_index]]
        return vit.pos_embed.requires_grad or any(
            p.requires_grad for module in before for p in module.parameters())

    def _losses(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        """Task and rate losses; ``images`` may also be cut tokens from a frozen satellite part."""
        if images.dim() == 3 and self.satellite_part_trains():
            raise ValueError(
                f"finetune={self.hparams.finetune!r} trains the satellite part, so batches must be "
                "images; cached cut tokens (FeatureDataModule) need a frozen satellite part "
                "(finetune='frozen' or 'head', or 'lora' at split 0, which adapts only ground blocks)"
            )
        rates: list[torch.Tensor] = []
        penalise = self.training and self.hparams.rate_penalty > 0
        with recording_rates(self.spiking_blocks(), rates) if penalise else contextlib.nullcontext():
            out = self.model.forward_parts(images)
        logits = out["logits"]
        ce = self.criterion(logits, labels)
        bits = estimated_bits(out["likelihoods"])
        bits = bits.mean() if bits.numel() else logits.new_zeros(())
        lmbda = self.hparams.lmbdas[self.link.rate_index] if self.variable_rate else self.hparams.lmbda
        loss = ce + lmbda * bits
        losses = {"logits": logits, "ce": ce, "bits": bits, "coded": bool(out["likelihoods"])}
        if rates:
            losses["firing_rate"] = torch.stack(rates).mean()
            loss = loss + self.hparams.rate_penalty * losses["firing_rate"]
        if self.teacher is not None:
            t = self.hparams.distill_temperature
            with torch.no_grad():
                teacher = self.teacher.forward_parts(images)  # images or cut tokens
                target = F.log_softmax(teacher["logits"] / t, dim=1)
            student = F.log_softmax(logits / t, dim=1)
            kd = F.kl_div(student, target, log_target=True, reduction="batchmean") * t * t
            loss = loss + self.hparams.distill_weight * kd
            losses["distill"] = kd
            if self.hparams.feature_distill_weight > 0:  # the head's input, scale-free
                features = teacher["features"]
                fd = F.mse_loss(out["features"], features) / features.var().clamp_min(1e-6)
                loss = loss + self.hparams.feature_distill_weight * fd
                losses["feature_distill"] = fd
            if self.hparams.cut_distill_weight > 0:  # the tokens at the cut, scale-free
                tokens = teacher["tokens"]
                mine = out[CUT_DISTILL_TARGETS[self.hparams.get("cut_distill_on", "tokens")]]
                cd = F.mse_loss(mine, tokens) / tokens.var().clamp_min(1e-6)
                loss = loss + self.hparams.cut_distill_weight * cd
                losses["cut_distill"] = cd
        losses["loss"] = loss
        return losses

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        if self.variable_rate:  # one level per step, drawn uniformly (the RNG is seeded)
            self.link.set_rate(int(torch.randint(self.link.num_rates, ())))
        losses = self._losses(images, labels)
        optimizers = self.optimizers()
        main = optimizers[0] if isinstance(optimizers, list) else optimizers
        main.zero_grad()
        self.manual_backward(losses["loss"])
        if self.hparams.clip_grad_norm > 0:
            self.clip_gradients(main, gradient_clip_val=self.hparams.clip_grad_norm,
                                gradient_clip_algorithm="norm")
        main.step()
        aux_loss = self.link.aux_loss()
        if isinstance(optimizers, list):
            # The raw optimizer, so that trainer.global_step counts batches, not two steps each.
            aux_optimizer = self.optimizers(use_pl_optimizer=False)[1]
            aux_optimizer.zero_grad()
            self.manual_backward(aux_loss)
            aux_optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        log_classification(self, "train", losses["logits"].detach(), labels, losses["loss"])
        logs = {"train/ce": losses["ce"], "train/bits_per_inference": losses["bits"], "train/aux_loss": aux_loss}
        for key in ("distill", "feature_distill", "cut_distill", "firing_rate"):
            if key in losses:
                logs[f"train/{key}"] = losses[key]
        self.log_dict(logs, on_step=True, on_epoch=True, batch_size=len(labels))
        return losses["loss"].detach()

    # ----------------------------------------------------------------- evaluation
    def _refresh_tables(self) -> None:
        self.link.update(force=True)
        self._eval_rate()

    def on_validation_start(self) -> None:
        self._refresh_tables()

    def on_test_start(self) -> None:
        self._refresh_tables()

    def on_predict_start(self) -> None:
        self._refresh_tables()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        """Accuracy through ``forward`` (quantised as the coder would) and estimated bits.

        Links without an entropy model report the real bits of their payloads instead.
        """
        images, labels = batch
        losses = self._losses(images, labels)
        bits = losses["bits"]
        if not losses["coded"]:
            tokens = self.model.cut_tokens(images)
            bits = payload_bits(self.link.compress(tokens)).mean().to(images.device, torch.float32)
        log_classification(self, "val", losses["logits"], labels, losses["loss"])
        self.log("val/bits_per_inference", bits, on_epoch=True, batch_size=len(labels))

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        """Classify the tokens decoded from the real payloads; log real and estimated rates."""
        images, labels = batch
        tokens = self.model.cut_tokens(images)
        payloads = self.link.compress(tokens)
        decoded = self.link.decompress(payloads, tokens.shape).to(tokens)
        logits = self.model.head(self.model.ground_part(decoded))
        real_bits = payload_bits(payloads).to(images.device, torch.float32)
        out = self.link(tokens)
        forward_logits = self.model.head(self.model.ground_part(out["y_hat"]))
        log_classification(self, "test", logits, labels, self.criterion(logits, labels))
        self.test_forward_acc.update(forward_logits, labels)
        n = len(labels)
        logs = {
            "test/bits_per_inference": real_bits.mean(),
            "test/bytes_per_inference": real_bits.mean() / 8,
        }
        est = estimated_bits(out["likelihoods"])
        if est.numel():
            est = est.to(real_bits)
            logs["test/bits_per_inference_estimated"] = est.mean()
            logs["test/bits_gap_per_inference"] = (real_bits - est).mean()
        self.log_dict(logs, on_epoch=True, batch_size=n)
        self.log("test/acc_forward", self.test_forward_acc, on_epoch=True, batch_size=n)

    def predict_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class indices through ``forward`` (quantised as the coder would)."""
        return self.model(batch[0]).argmax(dim=1)

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave the distillation teacher out: a frozen copy of ``pretrained``, rebuilt on load.

        It would otherwise double a codec checkpoint with weights that never change.
        """
        super().on_save_checkpoint(checkpoint)
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith(TEACHER_PREFIX)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resize the entropy coder's table buffers to the checkpoint's before Lightning loads it,
        and fill in the teacher (rebuilt from ``pretrained``) where the checkpoint leaves it out.
        Spiking blocks come calibrated and trained from it: ``setup`` must not convert them again.

        Table sizes depend on the trained densities; a fresh module holds empty ones, and
        Lightning's ``load_state_dict`` does not go through ``EntropyLink.load_state_dict``.
        """
        state = checkpoint.get("state_dict", {})
        self._calibrated = True
        if self.teacher is not None:
            for key, value in self.teacher.state_dict().items():
                state.setdefault(TEACHER_PREFIX + key, value)
        for name, buffer in list(self.named_buffers()):
            owner, _, leaf = name.rpartition(".")
            if leaf in _TABLE_BUFFERS and name in state and state[name].shape != buffer.shape:
                empty = torch.empty(state[name].shape, dtype=buffer.dtype, device=buffer.device)
                setattr(self.get_submodule(owner), leaf, empty)
