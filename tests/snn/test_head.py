"""The spiking head: shapes, gradients, explicit state (many satellites in one process)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from snn import READOUTS, SpikingHead


@pytest.mark.parametrize("readout", READOUTS)
@pytest.mark.parametrize("encoding", ["direct", "rate_sigmoid"])
def test_shapes(readout, encoding):
    torch.manual_seed(0)
    head = SpikingHead(16, 3, hidden=(12, 8), num_steps=5, encoding=encoding, readout=readout)
    rec = head.simulate(torch.randn(4, 16), generator=torch.Generator().manual_seed(0))
    assert rec.logits.shape == (4, 3)
    assert [s.shape for s in rec.spikes] == [(5, 4, 12), (5, 4, 8)]
    assert rec.out_spikes.shape == rec.out_mem.shape == (5, 4, 3)
    for s in [*rec.spikes, rec.out_spikes]:
        assert set(s.unique().tolist()) <= {0.0, 1.0}
    if readout == "membrane":
        assert rec.out_spikes.sum() == 0


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "atan", "sigmoid", "triangular"])
def test_gradients_reach_every_layer(surrogate):
    torch.manual_seed(0)
    head = SpikingHead(16, 3, hidden=(32,), num_steps=6, surrogate=surrogate, threshold=0.5)
    loss = nn.functional.cross_entropy(
        head(torch.randn(8, 16) * 2), torch.tensor([0, 1, 2] * 2 + [0, 1])
    )
    loss.backward()
    rates = head.simulate(torch.randn(8, 16)).firing_rates()
    assert len(rates) == 1 and rates[0].requires_grad
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_batch_equals_per_sample_runs():
    torch.manual_seed(0)
    head = SpikingHead(16, 3, hidden=(24,), num_steps=8, beta=0.8, threshold=0.3)
    x = torch.randn(5, 16)
    with torch.no_grad():
        batch = head.simulate(x)
        singles = [head.simulate(x[i : i + 1]) for i in range(5)]
    assert batch.spikes[0].sum() > 0
    assert torch.equal(batch.spikes[0], torch.cat([s.spikes[0] for s in singles], dim=1))
    assert torch.allclose(batch.logits, torch.cat([s.logits for s in singles]), atol=1e-6)


def test_interleaved_satellites_share_one_module():
    torch.manual_seed(0)
    head = SpikingHead(16, 3, hidden=(24,), num_steps=6, beta=0.9, threshold=0.4)
    xa, xb = torch.randn(1, 16), torch.randn(1, 16)
    with torch.no_grad():
        cur_a, cur_b = head.fcs[0](head.norm(xa)), head.fcs[0](head.norm(xb))
        state_a = head.init_state([cur_a, torch.zeros(1, 3)])
        state_b = head.init_state([cur_b, torch.zeros(1, 3)])
        outs_a, outs_b = [], []
        for _ in range(head.num_steps):  # satellite A and B take turns on the same module
            spikes_a, _, state_a = head.step(cur_a, state_a)
            spikes_b, _, state_b = head.step(cur_b, state_b)
            outs_a.append(spikes_a[-1])
            outs_b.append(spikes_b[-1])
        alone_a, alone_b = head.simulate(xa), head.simulate(xb)
    assert torch.equal(torch.stack(outs_a), alone_a.out_spikes)
    assert torch.equal(torch.stack(outs_b), alone_b.out_spikes)


def test_membrane_readout_of_a_linear_head_is_the_ann():
    torch.manual_seed(0)
    head = SpikingHead(16, 3, hidden=(), num_steps=7, readout="membrane", out_beta=0.8)
    x = torch.randn(4, 16)
    with torch.no_grad():
        assert torch.allclose(head(x), head.fcs[0](head.norm(x)), atol=1e-5)


def test_copyable_after_training_forward():
    head = SpikingHead(8, 2, hidden=(4,), num_steps=3)
    head(torch.randn(2, 8)).sum().backward()
    clone = copy.deepcopy(head)
    assert torch.equal(clone.fcs[0].weight, head.fcs[0].weight)


def test_bad_arguments():
    with pytest.raises(ValueError, match="count"):
        SpikingHead(8, 2, readout="latency")
    with pytest.raises(ValueError, match="direct"):
        SpikingHead(8, 2, encoding="phase")


def test_if_encoded_head_counts_its_encoder_and_a_spike_driven_first_layer():
    from snn.energy import count_ops

    torch.manual_seed(0)
    head = SpikingHead(16, 3, hidden=(12,), num_steps=4, encoding="if", readout="membrane")
    x = torch.randn(5, 16)
    rec = head.simulate(x)
    assert rec.in_spikes is not None and rec.in_spikes.shape == (4, 5, 16)
    assert len(rec.firing_rates()) == 2  # encoder, hidden layer
    counts = {lay.name: lay for lay in count_ops(head, x).layers}
    enc, fc0 = counts["encoder"], counts["fcs.0"]
    assert enc.neuron_updates == 4 * 5 * 16
    assert enc.spikes == int(rec.in_spikes.sum())
    assert fc0.macs == 0 and fc0.synops == enc.spikes * 12  # accumulates, one per spike x fan-out
    copy.deepcopy(head)  # no state left on the encoder neurons
