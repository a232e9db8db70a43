"""Surrogate and encoding registries, and the explicit-state neuron helpers."""

from __future__ import annotations

import copy

import pytest
import snntorch
import torch

from snn import (
    build_surrogate,
    encode,
    get_encoding,
    list_encodings,
    list_surrogates,
    make_lif,
    release_state,
)


def test_registries_list_the_builtins():
    assert {"fast_sigmoid", "atan", "sigmoid", "triangular", "straight_through"} <= set(
        list_surrogates()
    )
    assert {"direct", "rate", "rate_sigmoid"} <= set(list_encodings())


@pytest.mark.parametrize("name", list_surrogates())
def test_surrogate_is_heaviside_with_a_usable_gradient(name):
    u = torch.tensor([-50.0, -0.5, -0.1, 0.0, 0.1, 0.5, 50.0], requires_grad=True)
    spk = build_surrogate(name)(u)
    assert torch.equal(spk, (u > 0).float())
    spk.sum().backward()
    assert torch.isfinite(u.grad).all()  # snnTorch's own sigmoid gives NaN at -50
    assert (u.grad >= 0).all() and u.grad[3] > 0


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="fast_sigmoid"):
        build_surrogate("boxcar")
    with pytest.raises(ValueError, match="direct"):
        get_encoding("latency")
    with pytest.raises(ValueError, match="subtract"):
        make_lif(reset="soft")


def test_direct_encoding_repeats_the_input():
    x = torch.randn(3, 5)
    out = encode(x, 4, "direct")
    assert out.shape == (4, 3, 5)
    assert torch.equal(out[2], x)
    assert get_encoding("direct").constant and not get_encoding("rate").constant


def test_rate_encoding_is_binary_unbiased_and_passes_gradients():
    p = torch.tensor([[0.05, 0.2, 0.8, 0.95]], requires_grad=True)
    g = torch.Generator().manual_seed(0)
    spikes = encode(p, 2000, "rate", generator=g)
    assert spikes.shape == (2000, 1, 4)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(spikes.mean(0), p.detach(), atol=0.04)
    spikes.sum().backward()
    assert torch.all(p.grad == 2000)
    signed = encode(torch.zeros(2, 3), 8, "rate_sigmoid", generator=g)
    assert set(signed.unique().tolist()) <= {0.0, 1.0}


def test_neurons_keep_no_global_or_module_state():
    lif = make_lif(beta=0.9)
    assert all(n is not lif for n in snntorch.SpikingNeuron.instances)
    x = torch.randn(2, 3, requires_grad=True)
    spk, mem = lif(x, torch.zeros_like(x))
    with pytest.raises(RuntimeError):
        copy.deepcopy(lif)  # snnTorch kept the graph on the module...
    release_state(lif)
    copy.deepcopy(lif)  # ...and release_state drops it
    (spk.sum() + mem.sum()).backward()
    assert x.grad is not None


def test_if_encoding_is_a_rounded_deterministic_rate_code():
    x = torch.tensor([[-0.5, 0.0, 0.1, 0.3, 0.5, 0.74, 1.0, 2.0]])
    spikes = encode(x, 4, "if")
    assert spikes.shape == (4, 1, 8)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    # count = round(T * x) for x in [0, 1], started at half the threshold; saturates at T
    assert spikes.sum(0).tolist() == [[0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 4.0]]
    assert torch.equal(encode(x, 4, "if"), spikes)  # deterministic
    assert get_encoding("if").neurons and not get_encoding("if").constant


def test_if_encoding_passes_gradients_through_the_neurons():
    x = torch.full((2, 3), 0.4, requires_grad=True)
    encode(x, 3, "if").sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
