"""Spiking transformer blocks: ternary encoding, spiking attention, conversion and their counts."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from snn.blocks import (
    SpikingAttention,
    SpikingBlock,
    TernaryEncoder,
    convert_blocks,
)
from snn.energy import Matmul, count_ops
from snn.neurons import recording_rates


def test_ternary_encoder_counts_are_the_rounded_input():
    enc = TernaryEncoder(num_steps=4, threshold=0.5)
    x = torch.tensor([-3.0, -0.6, -0.1, 0.0, 0.12, 0.4, 0.9, 2.0])
    spikes = enc(x)
    assert spikes.shape == (4, 8) and set(spikes.unique().tolist()) <= {-1.0, 0.0, 1.0}
    # IF neurons starting at half threshold, reset by subtraction: over T steps the count is
    # x * T / theta rounded half up in magnitude and clipped to T, so count / T ~ x / theta
    expected = torch.sign(x) * torch.clamp(torch.floor(x.abs() * 4 / 0.5 + 0.5), 0, 4)
    assert torch.equal(spikes.sum(0), expected)


def test_ternary_encoder_passes_gradients_through_the_surrogate():
    enc = TernaryEncoder(num_steps=2, threshold=1.0)
    x = torch.randn(3, 5, requires_grad=True)
    enc(x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_matmul_counts_only_nonzero_products_of_spikes():
    a = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])      # 2x3 spikes
    b = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])   # 3x2 spikes
    real = torch.randn(3, 2)
    for left, right, synops, macs in ((a, b, 4, 0), (a, real, 3 * 2, 0), (a + 0.5, real, 0, 12)):
        lay = count_ops(Matmul(), left, right, batch_size=1).layer("Matmul")
        assert (lay.synops, lay.macs) == (synops, macs)
        assert lay.spiking_macs == (12 if synops else 0)


def test_spiking_attention_is_counted_by_its_matmuls_not_as_dense_attention():
    torch.manual_seed(0)
    att = SpikingAttention(dim=8, num_heads=2, num_steps=3)
    spikes = torch.randint(-1, 2, (3, 2, 5, 8)).float()
    counts = count_ops(att, spikes, batch_size=2)
    kinds = {lay.name: lay.kind for lay in counts.layers}
    assert "attention" not in kinds.values()
    assert kinds["kv_matmul"] == kinds["q_matmul"] == "matmul"
    assert counts.layer("qkv").macs == 0 and counts.layer("qkv").synops > 0
    assert counts.layer("proj").macs == 0  # the projection sees the attention neuron's spikes


def _tokens(vit: nn.Module, n: int = 8) -> torch.Tensor:
    torch.manual_seed(1)
    images = torch.randn(n, 3, 32, 32)
    return vit.norm_pre(vit._pos_embed(vit.patch_embed(images)))


@pytest.mark.parametrize("attention", ["ann", "ssa"])
def test_converted_block_tracks_the_relu_ann_block_and_improves_with_t(tiny_vit, attention: str):
    x = _tokens(tiny_vit)
    block = tiny_vit.blocks[0]
    relu = copy.deepcopy(block)
    relu.mlp.act = nn.ReLU()  # what a rate code reproduces (the GELU gap is the ANN's own)
    with torch.no_grad():
        ref = relu(x)
        errs = {t: float((SpikingBlock.from_block(block, x, t, attention)(x) - ref).norm()
                         / (ref - x).norm()) for t in (1, 4, 64)}
    assert errs[64] < errs[4] < errs[1]
    if attention == "ann":  # only the MLP spikes: it converges to the ReLU block
        assert errs[64] < 0.05


def test_convert_blocks_calibrates_each_block_on_the_spiking_output_before_it(tiny_vit):
    x = _tokens(tiny_vit)
    new = convert_blocks(tiny_vit.blocks, [0, 1], x, num_steps=2, attention="ssa")
    assert [type(b) for b in tiny_vit.blocks] == [SpikingBlock, SpikingBlock] and len(new) == 2
    assert new[1].enc2.threshold > 0
    with torch.no_grad():
        assert tiny_vit.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 16, 32)
    with pytest.raises(ValueError, match="outside"):
        convert_blocks(tiny_vit.blocks, [2], x)


def test_every_linear_of_a_spiking_ssa_block_runs_on_spikes(tiny_vit):
    x = _tokens(tiny_vit)
    block = SpikingBlock.from_block(tiny_vit.blocks[0], x, num_steps=2, attention="ssa")
    counts = count_ops(block, x)
    for lay in counts.layers:
        if lay.kind in ("linear", "matmul"):
            assert lay.macs == 0 and lay.synops > 0, lay.name
    rates: list[torch.Tensor] = []
    with recording_rates([block], rates):
        block(x)
    # one rate per neuron population per step: enc1 (pos, neg), q/k/v/attn, enc2 (pos, neg), mlp
    assert len(rates) == (2 + 4 + 2 + 1) * 2


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"num_steps": 0}, "T >= 1"),
    ({"attention": "softmax"}, "attention"),
])
def test_impossible_blocks_are_refused(kwargs: dict, match: str):
    with pytest.raises(ValueError, match=match):
        SpikingBlock(8, 2, 16, **{"num_steps": 2, **kwargs})


def test_a_block_that_is_not_a_timm_block_is_refused():
    with pytest.raises(ValueError, match="not a timm transformer Block"):
        SpikingBlock.from_block(nn.Linear(4, 4), torch.randn(1, 2, 4))
