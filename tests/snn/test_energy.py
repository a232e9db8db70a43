"""The energy ledger: hand-counted, cross-checked against FlopCounterMode, named profiles."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devices import get_device, list_devices
from snn import (
    SpikingHead,
    SpikingMlp,
    count_ops,
    estimate_energy,
    flop_counter_macs,
    swap_mlps,
)


def _hand_head() -> SpikingHead:
    """2-3-2 integrate-and-fire head with weights chosen so every spike can be counted by hand.

    Input x = [1, 0.5]; hidden currents W1 x = [0.625, 1.5, -1] every step (direct encoding).
    With threshold 1, reset by subtraction and snnTorch's delayed reset, over T = 4 steps:
    neuron 0: mem 0.625, 1.25*, 0.875, 1.5*  -> spikes at t=1, 3
    neuron 1: mem 1.5*, 2.0*, 2.5*, 3.0*      -> spikes at t=0..3
    neuron 2: never.                           hidden spikes per step: 1, 2, 1, 2 (6 total)
    Output currents W2 s: neuron 0 gets 1.5 when hidden 0 fires; neuron 1 gets 1.5 always:
    out 0: mem 0, 1.5*, 0.5, 2.0*  -> 2 spikes; out 1: 1.5*, 2.0*, 2.5*, 3.0* -> 4 spikes;
    output spikes per step: 1, 2, 1, 2.
    """
    head = SpikingHead(
        2,
        2,
        hidden=(3,),
        num_steps=4,
        beta=1.0,
        threshold=1.0,
        encoding="direct",
        readout="count",
        norm=False,
    )
    with torch.no_grad():
        head.fcs[0].weight.copy_(torch.tensor([[0.5, 0.25], [1.0, 1.0], [-1.0, 0.0]]))
        head.fcs[1].weight.copy_(torch.tensor([[1.5, 0.0, 0.0], [0.0, 1.5, 0.0]]))
        head.fcs[0].bias.zero_()
        head.fcs[1].bias.zero_()
    return head


def test_hand_counted_network():
    head = _hand_head()
    x = torch.tensor([[1.0, 0.5]])
    with torch.no_grad():
        assert head(x).tolist() == [[2.0, 4.0]]
    counts = count_ops(head, x)
    fc1, lif1 = counts.layer("fcs.0"), counts.layer("lifs.0")
    fc2, out = counts.layer("fcs.1"), counts.layer("out")
    assert (fc1.calls, fc1.macs, fc1.synops) == (1, 2 * 3, 0)  # analogue input, computed once
    assert lif1.step_spikes == [1, 2, 1, 2] and lif1.neuron_updates == 3 * 4
    assert lif1.firing_rate == pytest.approx(6 / 12)
    assert fc2.step_synops == [2, 4, 2, 4] and fc2.synops == 6 * 2  # spikes x fan-out
    assert fc2.macs == 0 and fc2.spiking_macs == 4 * 3 * 2  # what a dense engine would do
    assert out.step_spikes == [1, 2, 1, 2] and out.spikes == 6 and out.neuron_updates == 8

    cmos = counts.energy("cmos45nm")
    expected = 6 * 4.6e-12 + 12 * 0.9e-12 + (12 + 8) * 4.6e-12
    assert cmos.energy_j == pytest.approx(expected, rel=1e-12)
    assert cmos.compute_j["synop"] == pytest.approx(12 * 0.9e-12)

    jetson = counts.energy("jetson_nano")
    mac = 2 * 10.0 / (472e9 * 0.3)  # 10 W at 30% of 472 GFLOP/s, 2 FLOPs per MAC
    assert not jetson.event_driven
    assert jetson.energy_j == pytest.approx((6 + 24) * mac + 20 * mac, rel=1e-12)
    assert jetson.compute_j["synop"] == 0.0

    loihi = counts.energy("loihi")
    assert loihi.energy_j == pytest.approx(6 * 4.6e-12 + 12 * 23.6e-12 + 20 * 81e-12, rel=1e-12)


def test_per_inference_divides_by_the_batch():
    head = _hand_head()
    one = estimate_energy(head, torch.tensor([[1.0, 0.5]]))
    four = estimate_energy(head, torch.tensor([[1.0, 0.5]] * 4))
    assert four.batch_size == 4 and four.energy_j == pytest.approx(one.energy_j)


def test_every_result_names_its_profile():
    counts = count_ops(_hand_head(), torch.tensor([[1.0, 0.5]]))
    reports = counts.energy_by_profile()
    assert set(reports) == set(list_devices()) >= {"cmos45nm", "loihi", "jetson_nano"}
    for name, report in reports.items():
        assert report.profile == name and report.to_dict()["profile"] == name
        assert report.source == get_device(name).source and report.source
        assert name in report.summary() and report.energy_j > 0
        row = report.to_row()
        assert row["profile"] == name and row["energy_j"] == report.energy_j
    with pytest.raises(ValueError, match="cmos45nm"):
        counts.energy("tpu")


def test_ann_vit_matches_flop_counter(tiny_vit):
    img = torch.randn(2, 3, 32, 32)
    counts = count_ops(tiny_vit, img)
    assert {lay.kind for lay in counts.layers} == {"conv2d", "linear", "attention"}
    attn = counts.layer("blocks.0.attn")
    assert attn.macs == 2 * 2 * 16 * 16 * 32  # QK^T and AV: 2 x B x N^2 x D
    total = sum(lay.macs for lay in counts.layers)
    # FlopCounterMode does not count the fused CPU attention kernel, only everything else...
    attention = sum(lay.macs for lay in counts.layers if lay.kind == "attention")
    assert flop_counter_macs(tiny_vit, img) == total - attention
    # ...and counts all of it, equal to the ledger, once timm uses plain matmuls.
    for block in tiny_vit.blocks:
        block.attn.fused_attn = False
    assert (
        flop_counter_macs(tiny_vit, img)
        == total
        == sum(lay.macs for lay in count_ops(tiny_vit, img).layers)
    )


def test_swapped_vit_counts_spikes_consistently(tiny_vit):
    img = torch.randn(2, 3, 32, 32)
    ann_macs = sum(lay.macs for lay in count_ops(tiny_vit, img).layers)
    swap_mlps(tiny_vit.blocks, [1], num_steps=4, calib_forward=lambda: tiny_vit(img))
    counts = count_ops(tiny_vit, img)
    fc2, lif = counts.layer("blocks.1.mlp.fc2"), counts.layer("blocks.1.mlp.lif")
    rows, hidden, width = 2 * 16, 128, 32
    assert fc2.calls == lif.calls == 4 and fc2.macs == 0
    assert fc2.spiking_macs == 4 * rows * hidden * width
    assert fc2.synops == lif.spikes * width
    assert lif.neuron_updates == 4 * rows * hidden and 0 < lif.firing_rate < 1
    assert sum(lay.macs for lay in counts.layers) == ann_macs - rows * hidden * width
    cmos, jetson = counts.energy("cmos45nm"), counts.energy("jetson_nano")
    assert cmos.synops == pytest.approx(fc2.synops / 2)
    assert jetson.energy_j > (ann_macs / 2) * get_device("jetson_nano").mac_j  # T x dense


def test_binary_conv_synops_are_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    spikes = (torch.rand(1, 2, 5, 5) > 0.6).float()
    lay = count_ops(conv, spikes).layers[0]
    brute = 0
    for oy in range(3):
        for ox in range(3):
            for ky in range(3):
                for kx in range(3):
                    iy, ix = 2 * oy + ky - 1, 2 * ox + kx - 1
                    if 0 <= iy < 5 and 0 <= ix < 5:
                        brute += int(spikes[0, :, iy, ix].sum()) * 3
    assert lay.synops == brute and lay.spiking_macs == 3 * 3 * 3 * 2 * 9


def test_mlp_alone_and_batch_size_override():
    mlp = SpikingMlp(8, 16, num_steps=3, threshold=0.2)
    counts = count_ops(mlp, torch.randn(2, 5, 8))
    assert counts.batch_size == 2
    report = count_ops(mlp, torch.randn(2, 5, 8), batch_size=10).energy()
    assert report.profile == "cmos45nm" and report.batch_size == 10
    with pytest.raises(ValueError, match="batch_size"):
        count_ops(mlp)
