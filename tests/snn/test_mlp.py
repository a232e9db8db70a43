"""The spiking MLP inside timm blocks."""

from __future__ import annotations

import pytest
import torch
from timm.layers import Mlp

from snn import SpikingMlp, robust_max, swap_mlps


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_drop_in_shapes_and_gradients():
    torch.manual_seed(0)
    mlp = SpikingMlp(16, 32, num_steps=4, threshold=0.5)
    x = torch.randn(2, 5, 16, requires_grad=True)
    out, spikes = mlp(x, return_spikes=True)
    assert out.shape == (2, 5, 16) and spikes.shape == (4, 2, 5, 32)
    out.pow(2).sum().backward()
    assert mlp.fc1.weight.grad.abs().sum() > 0  # only through the surrogate
    assert x.grad.abs().sum() > 0


def test_large_t_approximates_the_ann_mlp():
    torch.manual_seed(0)
    ann = Mlp(16, 64).eval()
    x = torch.randn(4, 8, 16)
    with torch.no_grad():
        hidden = ann.fc1(x)
        lam = robust_max(ann.act(hidden), 99.9)
        relu_ref = ann.fc2(torch.relu(hidden))
        errs = {t: _rel(SpikingMlp.from_mlp(ann, t, lam)(x), relu_ref) for t in (2, 64)}
        gelu_err = _rel(SpikingMlp.from_mlp(ann, 64, lam)(x), ann(x))
        relu_vs_gelu = _rel(relu_ref, ann(x))
    assert errs[64] < 0.05 < errs[2]  # converges to the ReLU MLP...
    assert gelu_err < relu_vs_gelu + 0.02  # ...so the only gap left to GELU is GELU vs ReLU


def test_swap_mlps_in_a_vit(tiny_vit):
    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = tiny_vit.forward_features(img)
        fc2_before = tiny_vit.blocks[1].mlp.fc2.weight.clone()
        new = swap_mlps(tiny_vit.blocks, [-1], num_steps=32, calib_forward=lambda: tiny_vit(img))
        out = tiny_vit.forward_features(img)
    assert isinstance(tiny_vit.blocks[1].mlp, SpikingMlp) and new[0] is tiny_vit.blocks[1].mlp
    assert not isinstance(tiny_vit.blocks[0].mlp, SpikingMlp)
    lam = float(new[0].lif.threshold)
    assert lam > 0 and torch.allclose(new[0].fc2.weight, fc2_before * lam)
    assert out.shape == ref.shape and _rel(out, ref) < 0.1
    assert tiny_vit(img).shape == (2, 4)


def test_unsupported_mlp_is_refused():
    with pytest.raises(ValueError, match="fc1/fc2"):
        SpikingMlp.from_mlp(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="norm"):
        SpikingMlp.from_mlp(Mlp(8, 16, norm_layer=torch.nn.LayerNorm))
