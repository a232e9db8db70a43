"""SpikingTask: a spiking task head (and optional spiking on-board MLPs) on a frozen split ViT.

Why a separate task: the spiking head is trained with surrogate gradients, may start from an
ANN-to-SNN conversion of a trained ANN MLP head, adds a firing-rate penalty, and at test time
measures the energy of the satellite side from the spikes it really emits. The ANN heads (the
linear head and an MLP of the same hidden sizes) run through the same task, so every variant of
the comparison is trained, tested and priced by one code path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn

from research.models.finetune import configure_finetuning
from research.models.split_vit import OnBoard, SplitViT
from research.models.weights import read_state_dict
from research.tasks.base import BaseTask
from research.tasks.classification import accuracy_metrics, log_classification, task_backbone
from snn import (
    READOUTS,
    OpCounts,
    SpikingHead,
    SpikingMlp,
    convert_head,
    count_ops,
    get_encoding,
    list_surrogates,
    recording_rates,
    robust_max,
    swap_mlps,
)

HEADS = ("spiking", "ann_mlp", "linear")
"""``spiking``: :class:`snn.SpikingHead`; ``ann_mlp``: ``Linear-ReLU-...-Linear`` of the same
hidden sizes (the fair ANN counterpart); ``linear``: the ViT's own ``Linear`` head."""
FINETUNES = ("frozen", "lora")
INITS = ("random", "convert")


def _ann_mlp(width: int, hidden: Sequence[int], num_classes: int) -> nn.Sequential:
    widths = [width, *hidden, num_classes]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _choice(name: str, value: str, options: Sequence[str]) -> None:
    if value not in options:
        raise ValueError(f"{name}={value!r}; expected one of {list(options)}")


class SpikingTask(BaseTask):
    """Train a spiking (or ANN) task head on a split ViT and price the satellite side.

    Args:
        backbone: preset name (``satvit_tiny``, ``satvit_small``).
        num_classes: number of classes.
        in_chans: input bands.
        split_index: blocks on the satellite side of the cut.
        head_placement: ``satellite`` (the head runs on board and is counted) or ``ground``.
        finetune: ``frozen`` backbone or ``lora`` adapters; the head always trains.
        lora_rank: LoRA rank (``finetune=lora``).
        lora_alpha: LoRA scaling numerator.
        pretrained: weights to start from (e.g. the fine-tuned ``satvit_small_full_mae_long.ckpt``); its
            ``fc_norm`` initialises the spiking head's norm.
        head: one of :data:`HEADS`.
        hidden: hidden widths of the spiking and ANN MLP heads.
        num_steps: timesteps ``T`` of the spiking head and the spiking blocks.
        beta: membrane decay of the head's LIF neurons, in [0, 1].
        threshold: firing threshold of the head (> 0).
        surrogate: surrogate-gradient name (see :func:`snn.list_surrogates`).
        encoding: input encoding of the spiking head.
        readout: output readout of the spiking head (``membrane`` trains well at small T).
        spiking_blocks: on-board blocks (indices < ``split_index``) whose MLP becomes a
            :class:`snn.SpikingMlp` (integrate-and-fire, thresholds calibrated on training data).
        train_spiking_blocks: fine-tune those spiking MLPs with surrogate gradients.
        init: ``random``, or ``convert``: the spiking head starts as the ANN-to-SNN conversion
            (:func:`snn.convert_head`) of the trained ANN MLP head in ``convert_from``; the
            conversion fixes beta=1, threshold=1, direct encoding and the membrane readout.
        convert_from: Lightning checkpoint of a ``SpikingTask(head="ann_mlp")`` on the same backbone.
        calib_batches: training batches used to calibrate thresholds and conversion.
        rate_penalty: weight of the mean firing rate added to the loss (sparsity = energy).
        drop_path_rate: stochastic depth.
        label_smoothing: cross-entropy label smoothing.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_epochs: linear warm-up length.
    """

    def __init__(
        self,
        backbone: str = "satvit_small",
        num_classes: int = 10,
        in_chans: int = 3,
        split_index: int = 0,
        head_placement: str = "satellite",
        finetune: str = "frozen",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        pretrained: str | None = None,
        head: str = "spiking",
        hidden: tuple[int, ...] = (256,),
        num_steps: int = 4,
        beta: float = 0.9,
        threshold: float = 1.0,
        surrogate: str = "fast_sigmoid",
        encoding: str = "direct",
        readout: str = "membrane",
        spiking_blocks: list[int] | None = None,
        train_spiking_blocks: bool = True,
        init: str = "random",
        convert_from: str | None = None,
        calib_batches: int = 4,
        rate_penalty: float = 0.0,
        drop_path_rate: float = 0.0,
        label_smoothing: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_epochs: float = 1.0,
    ) -> None:
        _choice("head", head, HEADS)
        _choice("finetune", finetune, FINETUNES)
        _choice("init", init, INITS)
        _choice("readout", readout, READOUTS)
        _choice("surrogate", surrogate, list_surrogates())
        get_encoding(encoding)  # an unknown name lists the valid ones
        if num_steps < 1:
            raise ValueError(f"num_steps={num_steps}; a spiking head needs T >= 1")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta={beta}; the membrane decay must lie in [0, 1]")
        if threshold <= 0:
            raise ValueError(f"threshold={threshold}; expected a positive firing threshold")
        if rate_penalty < 0:
            raise ValueError(f"rate_penalty={rate_penalty}; expected >= 0")
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden={list(hidden)}; widths must be positive")
        bad = [i for i in spiking_blocks or [] if not 0 <= i < split_index]
        if bad:
            raise ValueError(
                f"spiking_blocks={bad} are not on board; with split_index={split_index} the "
                f"satellite holds blocks {list(range(split_index))}"
            )
        if init == "convert" and (head != "spiking" or not convert_from):
            raise ValueError("init='convert' needs head='spiking' and convert_from (an ann_mlp ckpt)")
        self._calibrated = False
        self._test_counts: list[OpCounts] = []
        self.test_counts: OpCounts | None = None
        self.test_energy: dict = {}
        self.save_hyperparameters()
        super().__init__()

    # ----------------------------------------------------------------- models
    def configure_models(self) -> None:
        hp = self.hparams
        vit = task_backbone(hp)
        width = vit.embed_dim
        if hp.head == "ann_mlp":
            vit.head = _ann_mlp(width, hp.hidden, hp.num_classes)
        elif hp.head == "spiking":
            vit.head = self._spiking_head(width)
            vit.head.norm.load_state_dict(vit.fc_norm.state_dict())  # the trained fc_norm
            vit.fc_norm = nn.Identity()
        if hp.spiking_blocks:  # IF neurons: the rate code of a converted MLP needs no leak
            swap_mlps(vit.blocks, hp.spiking_blocks, hp.num_steps, beta=1.0, surrogate=hp.surrogate)
        model = SplitViT(vit, hp.split_index, hp.head_placement)
        mode = "head" if hp.finetune == "frozen" else "lora"
        self.model = configure_finetuning(model, mode, hp.lora_rank, hp.lora_alpha)
        if hp.train_spiking_blocks:
            for mlp in self.spiking_mlps():
                mlp.requires_grad_(True)

    def _spiking_head(self, width: int) -> SpikingHead:
        hp = self.hparams
        if hp.init == "convert":  # the architecture convert_head produces, so weights load
            return SpikingHead(width, hp.num_classes, hp.hidden, hp.num_steps, beta=1.0,
                               threshold=1.0, surrogate=hp.surrogate, encoding="direct",
                               readout="membrane", norm=True, reset="subtract", mem_init=0.5,
                               out_beta=1.0)
        return SpikingHead(width, hp.num_classes, hp.hidden, hp.num_steps, hp.beta, hp.threshold,
                           hp.surrogate, hp.encoding, hp.readout, norm=True)

    def configure_losses(self) -> None:
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.hparams.label_smoothing)

    def configure_metrics(self) -> None:
        self.train_metrics, self.val_metrics, self.test_metrics = accuracy_metrics(self.hparams.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def spiking_mlps(self) -> list[SpikingMlp]:
        """The spiking MLPs of the on-board blocks, in block order."""
        return [b.mlp for b in self.model.vit.blocks if isinstance(b.mlp, SpikingMlp)]

    # ------------------------------------------------------------ calibration
    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> None:
        """Set spiking-block thresholds and convert the ANN head, from normalised images.

        Why here and not in ``configure_models``: both need activations of real data. Runs once,
        from :meth:`setup`; a checkpoint restored afterwards overrides what it set.
        """
        was_training = self.training
        self.eval()
        try:
            for mlp in self.spiking_mlps():  # in order: each sees the spikes of those before
                acts: list[torch.Tensor] = []
                hook = mlp.fc1.register_forward_hook(
                    lambda _m, _i, out, acts=acts: acts.append(out.relu())
                )
                try:
                    self.model.satellite_part(images)
                finally:
                    hook.remove()
                new = robust_max(torch.cat([a.flatten() for a in acts]))
                old = float(mlp.lif.threshold)
                fc2 = getattr(mlp.fc2, "base_layer", mlp.fc2)
                fc2.weight.mul_(new / old)
                mlp.lif.threshold.fill_(new)
            if self.hparams.init == "convert":
                self._convert_head(images)
        finally:
            self.train(was_training)
        self._calibrated = True

    def _convert_head(self, images: torch.Tensor) -> None:
        hp = self.hparams
        state = read_state_dict(hp.convert_from)
        ann = nn.Sequential(nn.LayerNorm(self.model.embed_dim, eps=1e-6),
                            *_ann_mlp(self.model.embed_dim, hp.hidden, hp.num_classes))
        own = {f"0.{k[len('fc_norm.'):]}": v for k, v in state.items() if k.startswith("fc_norm.")}
        own.update({f"{int(k.split('.')[1]) + 1}.{k.split('.', 2)[2]}": v
                    for k, v in state.items() if k.startswith("head.")})
        try:
            ann.load_state_dict(own)
        except RuntimeError as err:
            raise ValueError(
                f"convert_from={hp.convert_from!r} holds no ann_mlp head of hidden={list(hp.hidden)}: {err}"
            ) from err
        ann = ann.to(images.device)
        features = self.model.ground_part(self.model.link(self.model.satellite_part(images))["y_hat"])
        converted = convert_head(ann, features, hp.num_steps, surrogate=hp.surrogate)
        self.model.vit.head.load_state_dict(converted.state_dict())

    def setup(self, stage: str) -> None:
        """Calibrate on the first ``calib_batches`` training batches, when there is anything to."""
        if self._calibrated or not (self.spiking_mlps() or self.hparams.init == "convert"):
            return
        images = self.first_train_images(self.hparams.calib_batches)
        if images is not None:
            self.calibrate(images)

    # --------------------------------------------------------------- training
    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits from images, or from pooled features ``[B, D]`` of the frozen backbone.

        Pooled features (cached by :class:`~research.data.features.FeatureDataModule`) skip the
        whole ViT, so only the head runs; that needs nothing before the head to train.
        """
        if inputs.dim() != 2:
            return self.model(inputs)
        if self.hparams.finetune != "frozen" or self.spiking_mlps():
            raise ValueError(
                "pooled-feature batches need a frozen backbone without spiking blocks; got "
                f"finetune={self.hparams.finetune!r}, spiking_blocks={self.hparams.spiking_blocks}"
            )
        if inputs.shape[1] != self.model.embed_dim:
            raise ValueError(f"expected pooled features [B, {self.model.embed_dim}], got {list(inputs.shape)}")
        return self.model.head(inputs)

    def _step(self, batch: list[torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch
        rates: list[torch.Tensor] = []
        penalise = stage == "train" and self.hparams.rate_penalty > 0
        with recording_rates([self.model], rates) if penalise else contextlib.nullcontext():
            logits = self._logits(images)
        loss = self.criterion(logits, labels)
        if rates:
            rate = torch.stack(rates).mean()
            loss = loss + self.hparams.rate_penalty * rate
            self.log(f"{stage}/firing_rate", rate, on_step=True, on_epoch=True, batch_size=len(labels))
        log_classification(self, stage, logits, labels, loss)
        return loss

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def predict_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.model(batch[0]).argmax(dim=1)

    # ------------------------------------------------------------ test energy
    def on_test_epoch_start(self) -> None:
        self._test_counts = []

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        """One forward: logits for the metrics, ops of the satellite side for the energy."""
        images, labels = batch
        board = OnBoard(self.model, self.model.link)  # the link is the identity here
        self._test_counts.append(count_ops(board, images))
        logits = self.model.head(self.model.ground_part(self.model.link(board.tokens)["y_hat"]))
        log_classification(self, "test", logits, labels, self.criterion(logits, labels))

    def on_test_epoch_end(self) -> None:
        """Log energy per inference per profile, the head's share, and firing rates per layer."""
        if not self._test_counts:
            return
        counts = OpCounts.merge(self._test_counts)
        self.test_counts = counts
        self.test_energy = counts.energy_by_profile()
        for name, rep in self.test_energy.items():
            head_j = sum(lay.energy_j for lay in rep.layers if lay.name.startswith("head."))
            self.log(f"test/energy_j_{name}", rep.energy_j)
            self.log(f"test/head_energy_j_{name}", head_j)
        rep = next(iter(self.test_energy.values()))
        self.log("test/macs_per_inference", rep.macs)
        self.log("test/synops_per_inference", rep.synops)
        for lay in counts.layers:
            if lay.firing_rate is not None:
                self.log(f"test/firing_rate_{lay.name.replace('.', '_')}", lay.firing_rate)

    def firing_rates(self) -> dict[str, float]:
        """Measured spikes per neuron per step of each neuron layer in the last test run."""
        if self.test_counts is None:
            return {}
        return {lay.name: lay.firing_rate for lay in self.test_counts.layers
                if lay.firing_rate is not None}

    def head_energy(self) -> dict[str, float]:
        """Joules per inference of the head alone, per profile, from the last test run."""
        return {name: sum(lay.energy_j for lay in rep.layers if lay.name.startswith("head."))
                for name, rep in self.test_energy.items()}
