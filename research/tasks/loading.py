"""Load a fine-tuned classification checkpoint as a plain SplitViT, outside Lightning.

Federated fine-tuning, serving and evaluation start from the committed checkpoints; this is the
one place that turns a ``ClassificationTask`` checkpoint into a model plus the input
normalisation it was trained with (a model must see inputs scaled as in training).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch

from research.data.transforms import normalize
from research.models.split_vit import SplitViT
from research.tasks.classification import ClassificationTask
from research.tasks.codec import CodecTask

__all__ = ["Classifier", "load_classifier", "load_task"]


@dataclass
class Classifier:
    """A split model in eval mode with its normalisation and training hyper-parameters."""

    model: SplitViT
    mean: list[float]
    std: list[float]
    hparams: dict
    path: Path

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` images scaled as the model saw them in training."""
        return normalize(images, self.mean, self.std)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
        """Class indices of uint8 images, in batches."""
        out = [self.model(self.normalize(images[i : i + batch_size])).argmax(1)
               for i in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def _init_arguments(task_cls: type, hparams: dict) -> dict:
    """The saved hyper-parameters ``task_cls`` takes, as Lightning's ``load_from_checkpoint`` does.

    Tasks built outside LightningCLI used to save their parents' arguments too (a ``CodecTask``
    saved ``ClassificationTask``'s ``layer_decay``, say); checkpoints written before that was
    fixed still carry them.
    """
    params = inspect.signature(task_cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return hparams
    return {k: v for k, v in hparams.items() if k in params}


def _saved_hparams(ckpt: dict, split_index: int | None, head_placement: str | None) -> dict:
    """The checkpoint's hyper-parameters, re-cut as asked, without the weights file it started from."""
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    hparams["pretrained"] = None
    hparams.pop("init_from", None)  # the weights are in the checkpoint itself
    if split_index is not None:
        hparams["split_index"] = split_index
    if head_placement is not None:
        hparams["head_placement"] = head_placement
    return hparams


def load_task(path: str | Path, *, split_index: int | None = None,
              head_placement: str | None = None) -> tuple[ClassificationTask | CodecTask, dict]:
    """Rebuild the ``ClassificationTask`` (or ``CodecTask``) saved at ``path``, in float32, with
    the checkpoint it came from (for its data normalisation). :func:`load_classifier` says what
    ``split_index`` and ``head_placement`` do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"cannot read checkpoint {str(path)!r}: {err}") from err
    if not isinstance(ckpt, dict) or "hyper_parameters" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{str(path)!r} is not a ClassificationTask checkpoint "
                         "(expected 'hyper_parameters' and 'state_dict')")
    hparams = _saved_hparams(ckpt, split_index, head_placement)
    task_cls = CodecTask if "codec" in hparams else ClassificationTask
    if task_cls is CodecTask and split_index not in (None, ckpt["hyper_parameters"]["split_index"]):
        raise ValueError(f"{str(path)!r} holds a codec trained at split_index "
                         f"{ckpt['hyper_parameters']['split_index']}; it cannot be re-cut")
    task = task_cls(**_init_arguments(task_cls, hparams))
    if task_cls is CodecTask:
        task.on_load_checkpoint(ckpt)  # size the entropy tables before loading them
    task.load_state_dict({k: v.float() if v.is_floating_point() else v
                          for k, v in ckpt["state_dict"].items()})
    if task_cls is CodecTask:
        task.model.link.update(force=True)  # tables are rebuilt from the loaded entropy models
    return task, ckpt


def load_classifier(path: str | Path, *, split_index: int | None = None,
                    head_placement: str | None = None) -> Classifier:
    """Rebuild the ``ClassificationTask`` (or ``CodecTask``) saved at ``path``, in float32.

    ``split_index`` / ``head_placement`` re-cut the same weights elsewhere: the split only decides
    where the model is cut, not what it computes. A ``CodecTask`` checkpoint (its hyper-parameters
    name a ``codec``) comes back with its trained link module at the cut.
    """
    path = Path(path)
    task, ckpt = load_task(path, split_index=split_index, head_placement=head_placement)
    hparams = _saved_hparams(ckpt, split_index, head_placement)
    # trained on images, or on cached features of them (same normalisation)
    stats = ckpt.get("EuroSATDataModule") or ckpt.get("FeatureDataModule")
    if not stats:
        raise ValueError(f"checkpoint {str(path)!r} carries no EuroSATDataModule normalisation")
    model = task.model.eval()
    return Classifier(model, list(stats["mean"]), list(stats["std"]), hparams, path)
