"""SplitViT: exact composition at every cut, clear errors, per-part profiles, fine-tuning modes."""

from __future__ import annotations

import pytest
import torch

from research.models import (
    SplitViT,
    build_backbone,
    configure_finetuning,
    list_backbones,
    profile_split,
    trainable_parameters,
)
from research.models.profile import count_flops


@pytest.fixture()
def vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone("satvit_tiny", num_classes=10).eval()


def test_presets_registry_lists_and_rejects() -> None:
    assert {"satvit_tiny", "satvit_small", "satvit_base"} <= set(list_backbones())
    with pytest.raises(ValueError, match="unknown backbone 'vit_huge'.*satvit_small"):
        build_backbone("vit_huge")


def test_tokens_at_64px_patch_8() -> None:
    model = SplitViT(build_backbone("satvit_tiny"))
    assert model.satellite_part(torch.randn(2, 3, 64, 64)).shape == (2, 64, 32)


def test_parts_compose_to_the_unsplit_model(vit: torch.nn.Module) -> None:
    x = torch.randn(3, 3, 64, 64)
    reference = vit(x)
    for k in range(len(vit.blocks) + 1):
        for placement in ("satellite", "ground"):
            model = SplitViT(vit, k, placement).eval()
            tokens = model.satellite_part(x)
            logits = model.head(model.ground_part(model.link(tokens)["y_hat"]))
            assert torch.equal(logits, reference), f"split_index={k}"


@pytest.mark.parametrize("bad", [-1, 3, 100, 1.5])
def test_out_of_range_split_index(vit: torch.nn.Module, bad: object) -> None:
    with pytest.raises(ValueError, match=rf"split_index={bad!r} is out of range.*0\.\.2"):
        SplitViT(vit, bad)  # type: ignore[arg-type]


def test_bad_head_placement(vit: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="head_placement='space'"):
        SplitViT(vit, 0, "space")  # type: ignore[arg-type]


def test_profile_parts_add_up_to_the_whole(vit: torch.nn.Module) -> None:
    whole = count_flops(vit, torch.randn(1, 3, 64, 64))
    for k in range(3):
        prof = profile_split(SplitViT(vit, k))
        total = sum(p.flops for p in prof.parts)
        assert total == whole
        assert prof.cut_shape == (64, 32) and prof.cut_bytes_float32 == 64 * 32 * 4
        assert prof.return_bytes_float32 == 32 * 4
        assert sum(p.params for p in prof.parts) == sum(p.numel() for p in vit.parameters())
    assert profile_split(SplitViT(vit, 1)).part("satellite").flops > profile_split(SplitViT(vit, 0)).part("satellite").flops
    assert profile_split(SplitViT(vit, 0, "ground")).return_bytes_float32 == 0


@pytest.mark.parametrize("mode", ["head", "lora", "full"])
def test_frozen_parameters_get_no_gradient(mode: str) -> None:
    torch.manual_seed(0)
    model = configure_finetuning(SplitViT(build_backbone("satvit_tiny")), mode, lora_rank=4)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert p.grad is None, name
    if mode == "head":
        assert names == {"vit.fc_norm.weight", "vit.fc_norm.bias", "vit.head.weight", "vit.head.bias"}
    if mode == "lora":
        assert any("lora_A" in n for n in names) and not any("qkv.base_layer" in n for n in names)
        assert not any("patch_embed" in n for n in names)
    if mode == "full":
        assert trainable_parameters(model) == sum(p.numel() for p in model.parameters())


def test_lora_starts_as_the_base_model() -> None:
    torch.manual_seed(0)
    vit = build_backbone("satvit_tiny").eval()
    x = torch.randn(2, 3, 64, 64)
    reference = vit(x)
    model = configure_finetuning(SplitViT(vit), "lora").eval()
    assert torch.allclose(model(x), reference, atol=1e-6)


def test_unknown_finetune_mode() -> None:
    with pytest.raises(ValueError, match="unknown finetune mode 'prompt'"):
        configure_finetuning(SplitViT(build_backbone("satvit_tiny")), "prompt")


def test_cut_tokens_accept_images_or_the_tokens_themselves(vit: torch.nn.Module) -> None:
    model = SplitViT(vit, split_index=1).eval()
    images = torch.randn(2, 3, 64, 64)
    tokens = model.satellite_part(images)
    assert torch.equal(model.cut_tokens(images), tokens)
    assert model.cut_tokens(tokens) is tokens
    with torch.no_grad():
        torch.testing.assert_close(model.forward_parts(tokens)["logits"], model(images))
    with pytest.raises(ValueError, match=r"cut tokens \[B, 64, "):
        model.cut_tokens(tokens[:, :10])
