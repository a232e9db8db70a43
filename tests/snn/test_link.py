"""The spiking link honours the link contract and round-trips exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders import HEADER_SIZE, build_link, list_links
from snn import SpikeLink, pack_spikes, unpack_spikes
from snn.link import SPIKE_CODEC_ID

DIM, TOKENS = 32, 16


@pytest.fixture
def link() -> SpikeLink:
    torch.manual_seed(0)
    return build_link("spike", dim=DIM, code_dim=8, num_steps=6)


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randn(3, TOKENS, DIM, generator=torch.Generator().manual_seed(1))


def test_registered_with_its_own_codec_id(link):
    assert "spike" in list_links() and isinstance(link, SpikeLink)
    assert link.codec_id == SPIKE_CODEC_ID >= 128


def test_forward_contract_and_gradients(link, tokens):
    tokens = tokens.clone().requires_grad_(True)
    out = link(tokens)
    assert set(out) == {"y_hat", "likelihoods"} and out["likelihoods"] == {}
    assert out["y_hat"].shape == tokens.shape
    out["y_hat"].pow(2).mean().backward()
    assert link.encoder.weight.grad.abs().sum() > 0  # through the surrogate
    assert tokens.grad.abs().sum() > 0


def test_roundtrip_is_exact(link, tokens):
    with torch.no_grad():
        y_hat = link(tokens)["y_hat"]
        spikes = link.encode(tokens)
    payloads = link.compress(tokens)
    assert len(payloads) == 3
    bound = HEADER_SIZE + (6 * TOKENS * 8 + 7) // 8
    assert all(len(p) <= bound for p in payloads)
    assert torch.equal(link.decompress(payloads, tokens.shape), y_hat)
    assert torch.equal(link.decompress(payloads, tokens.shape[1:]), y_hat)
    body = payloads[1][HEADER_SIZE:]
    flags = payloads[1][4]
    rebuilt = unpack_spikes(body, flags, 6, TOKENS, 8)
    assert np.array_equal(rebuilt, spikes[:, 1].to(torch.uint8).numpy())


def test_silent_trains_compress(link):
    with torch.no_grad():
        link.encoder.bias.fill_(-100.0)
    payload = link.compress(torch.zeros(1, TOKENS, DIM))[0]
    assert len(payload) < HEADER_SIZE + (6 * TOKENS * 8) // 8
    assert link.decompress([payload], (TOKENS, DIM)).shape == (1, TOKENS, DIM)


def test_bad_payloads_raise_value_errors(link, tokens):
    good = link.compress(tokens)
    shape = tokens.shape
    with pytest.raises(ValueError, match="truncated"):
        link.decompress([good[0][:10]], shape[1:])
    damaged = bytearray(good[0])
    damaged[-1] ^= 0xFF
    with pytest.raises(ValueError, match="CRC32"):
        link.decompress([bytes(damaged)], shape[1:])
    with pytest.raises(ValueError, match="width"):
        link.decompress(good, (3, TOKENS, DIM + 1))
    other_t = SpikeLink(DIM, code_dim=8, num_steps=7)
    other_t.load_state_dict(link.state_dict())
    with pytest.raises(ValueError, match="configuration"):
        other_t.decompress(good, shape)
    retrained = SpikeLink(DIM, code_dim=8, num_steps=6)  # same config, other weights
    with pytest.raises(ValueError, match="configuration"):
        retrained.decompress(good, shape)


def test_random_damage_never_crashes(link, tokens):
    rng = np.random.default_rng(0)
    payload = link.compress(tokens[:1])[0]
    for _ in range(30):
        raw = bytearray(payload)
        for pos in rng.integers(0, len(raw), size=3):
            raw[pos] = int(rng.integers(0, 256))
        try:
            link.decompress([bytes(raw)], tokens.shape[1:])
        except ValueError:
            pass


def test_spike_packing_helpers():
    spikes = (np.arange(2 * 3 * 5).reshape(2, 3, 5) % 3 == 0).astype(np.uint8)
    body, flags = pack_spikes(spikes, zlib_level=0)
    assert flags == 0 and len(body) == 4
    assert np.array_equal(unpack_spikes(body, flags, 2, 3, 5), spikes)
    with pytest.raises(ValueError, match="binary"):
        pack_spikes(spikes * 2)
    with pytest.raises(ValueError, match="body has 4 bytes after inflating, expected 5"):
        unpack_spikes(body, flags, 2, 3, 6)
    with pytest.raises(ValueError, match="padding"):
        unpack_spikes(body[:-1] + b"\xff", flags, 2, 3, 5)
