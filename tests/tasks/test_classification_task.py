"""ClassificationTask with a link module at the cut."""

from __future__ import annotations

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
