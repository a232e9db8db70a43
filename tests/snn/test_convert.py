"""ANN-to-SNN conversion of a head (Rueckauer et al. 2017)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snn import convert_head, robust_max


def test_robust_max_ignores_outliers_and_non_positives():
    values = torch.cat([torch.arange(1, 1001, dtype=torch.float32), torch.tensor([1e6, -5.0])])
    assert robust_max(values, 100.0) == 1e6
    assert robust_max(values, 99.0) == pytest.approx(991.0)
    assert robust_max(-torch.ones(4)) == 1.0
    with pytest.raises(ValueError):
        robust_max(values, 0.0)


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def test_converted_head_approaches_the_ann(blobs):
    x_tr, y_tr, x_te, y_te = blobs
    torch.manual_seed(0)
    ann = nn.Sequential(
        nn.LayerNorm(8),
        nn.Linear(8, 32),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(32, 32),
        nn.ReLU(),
        nn.Linear(32, 4),
    )
    ann = _train(ann, x_tr, y_tr)
    with torch.no_grad():
        ann_logits = ann(x_te)
        ann_acc = (ann_logits.argmax(1) == y_te).float().mean().item()
        errs, accs = {}, {}
        for steps in (4, 32):
            logits = convert_head(ann, x_tr, num_steps=steps)(x_te)
            errs[steps] = float((logits - ann_logits).norm() / ann_logits.norm())
            accs[steps] = (logits.argmax(1) == y_te).float().mean().item()
    assert ann_acc > 0.9
    assert accs[32] >= ann_acc - 0.03
    assert errs[32] < 0.1 and errs[32] < errs[4]


def test_timm_style_single_layer_head_converts_exactly():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 3))
    x = torch.randn(5, 8)
    head = convert_head(ann, x, num_steps=3)
    assert head.lifs == nn.ModuleList() or len(head.lifs) == 0
    with torch.no_grad():
        assert torch.allclose(head(x), ann(x), atol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2)),
        nn.Sequential(nn.Linear(4, 4), nn.ReLU()),
        nn.Sequential(),
    ],
)
def test_unsupported_heads_are_refused(bad):
    with pytest.raises(ValueError, match="convert_head"):
        convert_head(bad, torch.randn(3, 4))
