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
