"""Fine-tuning modes of the split ViT: head-only, LoRA (peft) on attention and MLP linears, full.

"Frozen" means ``requires_grad=False``: frozen parameters receive no gradient at all, so the
optimizer and the byte counters of federated rounds only ever see the trainable part.
"""

from __future__ import annotations

from typing import Literal

from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from research.models.split_vit import SplitViT

FinetuneMode = Literal["head", "lora", "full"]
FINETUNE_MODES: tuple[str, ...] = ("head", "lora", "full")
# timm block linears: attn.qkv, attn.proj, mlp.fc1, mlp.fc2 (the patch-embedding conv is excluded).
LORA_TARGETS = r".*blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))"


def add_lora(model: SplitViT, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0) -> SplitViT:
    """Inject LoRA adapters in place into every block's attention and MLP linears."""
    if rank < 1:
        raise ValueError(f"lora rank={rank}; expected a positive integer")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS)
    inject_adapter_in_model(config, model.vit)
    return model


def configure_finetuning(
    model: SplitViT, mode: str, lora_rank: int = 8, lora_alpha: float = 16.0
) -> SplitViT:
    """Freeze and unfreeze parameters for ``mode``; the link module always stays trainable."""
    if mode not in FINETUNE_MODES:
        raise ValueError(f"unknown finetune mode {mode!r}; expected one of {list(FINETUNE_MODES)}")
    if mode == "lora":
        add_lora(model, lora_rank, lora_alpha)
    for name, param in model.named_parameters():
        if mode == "full":
            param.requires_grad_(True)
        elif mode == "lora":
            param.requires_grad_("lora_" in name)
        else:
            param.requires_grad_(False)
    if mode != "full":
        for module in model.head_modules():
            module.requires_grad_(True)
    model.link.requires_grad_(True)
    return model


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters that receive gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
