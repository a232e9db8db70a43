"""ClassificationTask with a link module at the cut."""

from __future__ import annotations

import pytest
import torch

from encoders import build_link
from research.tasks import ClassificationTask


def test_link_module_is_registered_and_used() -> None:
    task = ClassificationTask(backbone="satvit_tiny", link=build_link("int8"), finetune="head")
    assert "model.link" in dict(task.named_modules())
    x = torch.randn(2, 3, 64, 64)
    out = task.model.forward_parts(x)
    assert not torch.equal(out["y_hat"], out["tokens"])  # 8-bit quantisation changed the tokens
    assert task(x).shape == (2, 10)


def test_eight_test_views_make_predictions_invariant_to_the_dihedral_group() -> None:
    torch.manual_seed(0)
    task = ClassificationTask(backbone="satvit_tiny", finetune="full", test_views=8).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        single = task.model(x)
        averaged = task.view_averaged_logits(x)
        rotated = task.view_averaged_logits(torch.rot90(x, 1, dims=(-2, -1)).flip(-1))
    assert torch.allclose(averaged.exp().sum(dim=1), torch.ones(3), atol=1e-5)  # log of a distribution
    assert not torch.allclose(averaged.log_softmax(dim=1), single.log_softmax(dim=1), atol=1e-3)
    assert torch.allclose(averaged, rotated, atol=1e-5)  # the 8 views form the group: order is irrelevant


def test_one_test_view_is_the_plain_forward_and_bad_counts_are_refused() -> None:
    task = ClassificationTask(backbone="satvit_tiny", finetune="full").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(task.view_averaged_logits(x), task.model(x))
    with pytest.raises(ValueError, match="test_views=9"):
        ClassificationTask(backbone="satvit_tiny", test_views=9)


def _rates(task: ClassificationTask) -> dict[str, float]:
    by_param = {id(p): g["lr"] for g in task.parameter_groups() for p in g["params"]}
    return {name: by_param[id(p)] for name, p in task.named_parameters()}


def test_layer_decay_scales_each_block_and_leaves_the_head_at_the_peak_rate() -> None:
    task = ClassificationTask(backbone="satvit_tiny", finetune="full", lr=1e-3, layer_decay=0.5)
    rates = _rates(task)  # satvit_tiny has 2 blocks
    assert rates["model.vit.head.weight"] == 1e-3
    assert rates["model.vit.blocks.1.mlp.fc1.weight"] == 1e-3 * 0.5
    assert rates["model.vit.blocks.0.attn.qkv.bias"] == 1e-3 * 0.25
    assert rates["model.vit.patch_embed.proj.weight"] == rates["model.vit.pos_embed"] == 1e-3 * 0.125
    groups = task.parameter_groups()
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in task.parameters())
    assert all(g["weight_decay"] == 0.0 for g in groups if any(p.ndim <= 1 for p in g["params"]))


def test_without_layer_decay_every_parameter_trains_at_the_peak_rate() -> None:
    task = ClassificationTask(backbone="satvit_tiny", finetune="lora", lr=2e-4)
    assert {g["lr"] for g in task.parameter_groups()} == {2e-4}
    with pytest.raises(ValueError, match="layer_decay=0"):
        ClassificationTask(backbone="satvit_tiny", layer_decay=0)


def test_mixup_and_cutmix_train_on_soft_targets_and_score_the_own_labels() -> None:
    torch.manual_seed(0)
    task = ClassificationTask(backbone="satvit_tiny", finetune="full", mixup_alpha=0.8, cutmix_alpha=1.0)
    images, labels = torch.randn(6, 3, 64, 64), torch.arange(6)
    mixed, targets = task.batch_mixer(images, labels)
    assert targets.shape == (6, 10) and torch.allclose(targets.sum(dim=1), torch.ones(6))
    assert not torch.equal(mixed, images)
    assert (targets[torch.arange(6), labels] > 0).all()  # each image keeps a share of its own label
    task.log = task.log_dict = lambda *args, **kwargs: None  # no trainer to log to
    loss = task.training_step([images, labels], 0)
    loss.backward()
    assert torch.isfinite(loss) and task.model.vit.head.weight.grad is not None
    assert task.train_metrics["acc"].update_count == 1  # scored against the hard labels


def test_batch_mixing_is_off_by_default_and_negative_alphas_are_refused() -> None:
    assert ClassificationTask(backbone="satvit_tiny").batch_mixer is None
    with pytest.raises(ValueError, match="mixup_alpha=-0.1"):
        ClassificationTask(backbone="satvit_tiny", mixup_alpha=-0.1)
