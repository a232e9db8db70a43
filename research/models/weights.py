"""Loading backbone weights from a local file: a timm/torch state dict, or a satedge checkpoint.

Accepted: a ``.pt``/``.pth`` state dict (possibly fp16), a ``.safetensors`` file, or a Lightning
checkpoint of ``MAEPretrainTask`` (keys ``model.encoder.*``) or ``ClassificationTask`` (keys
``model.vit.*``). Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from timm.models.vision_transformer import VisionTransformer

from research.models.averaging import weighted_average


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from ``path``, unwrapping Lightning checkpoints and satedge prefixes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - re-raised with the file named
            raise ValueError(f"cannot read weights {str(path)!r}: {err}") from err
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights {str(path)!r} hold no state dict of tensors")
    # An MAE checkpoint holds encoder + decoder: keep only the encoder.
    for scope in ("model.encoder.", "encoder.", "model.vit."):
        if any(k.startswith(scope) for k in state):
            state = {k[len(scope) :]: v for k, v in state.items() if k.startswith(scope)}
            break
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in ("vit.", "module."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        out[key] = value
    return out


def load_backbone_weights(
    vit: VisionTransformer, path: str | Path, strict_backbone: bool = True
) -> list[str]:
    """Load ``path`` into ``vit``; returns the keys left at their initial values (e.g. a new head).

    The classifier is skipped when its shape differs (a new task). Any other missing or unexpected
    backbone key is an error when ``strict_backbone`` (the file is not this architecture).
    """
    state = read_state_dict(path)
    own = vit.state_dict()
    skipped = [k for k in ("head.weight", "head.bias") if k in state and k in own and state[k].shape != own[k].shape]
    for key in skipped:
        state.pop(key)
    mismatched = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    if mismatched:
        raise ValueError(
            f"weights {str(path)!r} do not fit this backbone: {mismatched[0]} has shape "
            f"{tuple(state[mismatched[0]].shape)}, expected {tuple(own[mismatched[0]].shape)}"
        )
    result = vit.load_state_dict(state, strict=False)
    unexpected = [k for k in result.unexpected_keys if "lora_" not in k]
    missing = [k for k in result.missing_keys if not k.startswith(("head.", "fc_norm.")) and "lora_" not in k]
    if strict_backbone and (unexpected or missing):
        raise ValueError(
            f"weights {str(path)!r} do not match this backbone: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return sorted(result.missing_keys)


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


# What a committed task checkpoint keeps: enough for ``satedge test --ckpt_path`` (weights,
# hyper-parameters, the data module's normalisation), none of the optimizer or loop state.
SLIM_KEYS = (
    "state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch", "global_step",
    "EuroSATDataModule", "FeatureDataModule", "datamodule_hyper_parameters",
)  # a data module's state is the normalisation: trained on images or on cached features of them


def slim_task_checkpoint(checkpoint: dict, keep_float32: tuple[str, ...] = ()) -> dict:
    """A Lightning checkpoint reduced to fp16 weights plus what testing needs.

    Weights whose names start with a ``keep_float32`` prefix stay float32: a codec's entropy
    tables are tied to the exact entropy-model parameters they were built from
    (``keep_float32=("model.link.",)``).
    """
    slim = {k: checkpoint[k] for k in SLIM_KEYS if k in checkpoint}
    state = checkpoint["state_dict"]
    kept = {k: v for k, v in state.items() if k.startswith(keep_float32)} if keep_float32 else {}
    slim["state_dict"] = {**_half({k: v for k, v in state.items() if k not in kept}), **kept}
    return slim


def set_saved_hyperparameters(checkpoint: dict, section: str, values: dict[str, object]) -> dict:
    """Overwrite keys of a checkpoint's saved hyper-parameters (``section``: ``hyper_parameters``
    or ``datamodule_hyper_parameters``), e.g. paths that only existed on the machine that trained it.

    ``satedge test --ckpt_path`` rebuilds the model and data from these, so a data folder or
    foundation path from a GPU machine must be made this repo's before the checkpoint is shared.
    Unknown keys are refused: a typo would otherwise add a key nobody reads.
    """
    saved = checkpoint.get(section)
    if not isinstance(saved, dict):
        raise KeyError(f"checkpoint has no {section!r}; expected a Lightning checkpoint saved with save_hyperparameters()")
    unknown = sorted(set(values) - set(saved))
    if unknown:
        raise KeyError(f"{section} has no {unknown}; it has {sorted(k for k in saved if not k.startswith('_'))}")
    checkpoint[section] = {**saved, **values}
    return checkpoint


def average_task_checkpoints(checkpoints: list[dict]) -> dict:
    """The uniform weight average of task checkpoints of one architecture (a "model soup").

    Fine-tuning runs that start from the same weights stay in one loss basin, so the mean of their
    weights usually scores at least as well as the best of them at no inference cost (Wortsman et
    al., 2022). Everything but the weights comes from the first checkpoint.
    """
    if not checkpoints:
        raise ValueError("no checkpoints to average; expected at least one")
    states = [{k: v.float() for k, v in c["state_dict"].items()} for c in checkpoints]
    for i, state in enumerate(states[1:], start=1):
        if state.keys() != states[0].keys() or any(v.shape != states[0][k].shape for k, v in state.items()):
            differing = sorted(state.keys() ^ states[0].keys()) or "tensor shapes"
            raise ValueError(f"checkpoint {i} does not match checkpoint 0 ({differing}); expected one architecture")
    return {**checkpoints[0], "state_dict": weighted_average(states, [1.0] * len(states))}


def mae_encoder_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The fp16 encoder state dict of an ``MAEPretrainTask`` checkpoint (the foundation model)."""
    prefix = "model.encoder."
    encoder = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    if not encoder:
        raise ValueError("checkpoint holds no 'model.encoder.*' weights; expected an MAEPretrainTask checkpoint")
    return _half(encoder)


def export_task_checkpoint(trainer, path: str | Path, keep_float32: tuple[str, ...] = ()) -> Path:
    """Save ``trainer``'s model as a slim checkpoint at ``path`` (see :func:`slim_task_checkpoint`).

    Goes through ``trainer.save_checkpoint`` so the data module's normalisation is included.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = path.with_suffix(".full.tmp")
    trainer.save_checkpoint(full)
    try:
        checkpoint = torch.load(full, map_location="cpu", weights_only=False)
        torch.save(slim_task_checkpoint(checkpoint, keep_float32), path)
    finally:
        full.unlink(missing_ok=True)
    return path
