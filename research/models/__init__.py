"""Split ViT models: backbone presets, SplitViT, fine-tuning modes, MAE, per-part profiling."""

from research.models.finetune import (
    FINETUNE_MODES,
    add_lora,
    configure_finetuning,
    trainable_parameters,
)
from research.models.mae import MaskedAutoencoder, patchify
from research.models.presets import build_backbone, get_preset, list_backbones, register_backbone
from research.models.profile import SplitProfile, count_flops, profile_split
from research.models.split_vit import OnBoard, SplitViT
from research.models.weights import load_backbone_weights

__all__ = [
    "FINETUNE_MODES",
    "MaskedAutoencoder",
    "OnBoard",
    "SplitProfile",
    "SplitViT",
    "add_lora",
    "build_backbone",
    "configure_finetuning",
    "count_flops",
    "get_preset",
    "list_backbones",
    "load_backbone_weights",
    "patchify",
    "profile_split",
    "register_backbone",
    "trainable_parameters",
]
