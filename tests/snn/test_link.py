"""The spiking link honours the link contract and round-trips exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders import HEADER_SIZE, build_link, list_links
from encoders.header import FLAG_ZLIB, pack_payload
from snn import SpikeLink, pack_spikes, unpack_spikes
from snn.link import FLAG_RANS, SPIKE_CODEC_ID

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


# ----------------------------------------------------------------- the Bernoulli prior
def _skewed_link(prior: bool = True) -> SpikeLink:
    """A link whose channels fire with very different rates (what makes a prior pay)."""
    torch.manual_seed(0)
    link = build_link("spike", dim=DIM, code_dim=8, num_steps=2, num_tokens=TOKENS, prior=prior)
    with torch.no_grad():
        link.encoder.bias.copy_(torch.linspace(-3.0, 2.0, 8))
    return link.eval()


def _train_tokens(n: int = 256) -> torch.Tensor:
    return torch.randn(n, TOKENS, DIM, generator=torch.Generator().manual_seed(2))


def test_prior_codes_shorter_and_round_trips_exactly(tokens):
    link, plain = _skewed_link(), _skewed_link(prior=False)
    plain.load_state_dict({k: v for k, v in link.state_dict().items() if "prior" not in k})
    assert link.fit_prior(_train_tokens().split(64)) == 256
    coded, packed = link.compress(tokens), plain.compress(tokens)
    assert all(p[4] == FLAG_RANS for p in coded)
    assert sum(map(len, coded)) < 0.9 * sum(map(len, packed))
    with torch.no_grad():
        assert torch.equal(link.decompress(coded, tokens.shape), link(tokens)["y_hat"])
    # the range-coded body matches the prior's cross-entropy within the coder's flush
    lik = link(tokens)["likelihoods"]["spikes"]
    estimate = -torch.log2(lik.detach()).flatten(1).sum(1) / 8
    for payload, bits in zip(coded, estimate, strict=True):
        assert abs(len(payload) - HEADER_SIZE - float(bits)) < 8


def test_prior_likelihoods_train_the_encoder_towards_cheap_spikes(tokens):
    link = _skewed_link().train()
    first = link(tokens)["likelihoods"]["spikes"]
    assert torch.allclose(first, torch.full_like(first, 0.5))  # scored before it is counted
    assert float(link.prior_seen) == 3  # then the training batch was counted
    out = link(tokens.requires_grad_(True))
    lik = out["likelihoods"]["spikes"]
    assert lik.shape == (3, 2, TOKENS, 8) and ((lik > 0) & (lik < 1)).all()
    (-torch.log2(lik).sum()).backward()
    assert link.encoder.weight.grad.abs().sum() > 0  # the rate reaches the encoder


def test_prior_running_counts_decay_and_fit_replaces_them():
    link = _skewed_link()
    ones = torch.ones(2, 5, TOKENS, 8)
    link.observe(ones)
    link.observe(torch.zeros_like(ones), decay=0.5)
    assert float(link.prior_seen) == 7.5
    assert torch.allclose(link.firing_probability(), torch.full((2, TOKENS, 8), 3.0 / 8.5))
    link.fit_prior([torch.zeros(4, TOKENS, DIM)])
    assert float(link.prior_seen) == 4


def test_prior_payloads_refused_by_a_decoder_without_the_same_prior(tokens):
    link = _skewed_link()
    link.fit_prior(_train_tokens().split(64))
    coded = link.compress(tokens)
    refit = _skewed_link()
    refit.load_state_dict(link.state_dict())
    refit.fit_prior(_train_tokens()[:32].split(16))  # same weights, other counts
    with pytest.raises(ValueError, match="configuration"):
        refit.decompress(coded, tokens.shape)
    # both body flags, with a valid CRC so that only the flags are wrong
    both = pack_payload(SPIKE_CODEC_ID, link.wire_tag(), TOKENS, DIM, coded[0][HEADER_SIZE:],
                        flags=FLAG_RANS | FLAG_ZLIB)
    with pytest.raises(ValueError, match="both"):
        link.decompress([both], tokens.shape[1:])


def test_prior_configurations_that_cannot_exist_are_refused():
    with pytest.raises(ValueError, match="num_tokens"):
        SpikeLink(DIM, prior=True)
    with pytest.raises(ValueError, match="prior_momentum"):
        SpikeLink(DIM, num_tokens=TOKENS, prior=True, prior_momentum=0.0)
    link = _skewed_link()
    with pytest.raises(ValueError, match="token positions"):
        link.compress(torch.randn(1, TOKENS + 1, DIM))
    with pytest.raises(ValueError, match="no prior"):
        _skewed_link(prior=False).observe(torch.zeros(2, 1, TOKENS, 8))


def test_mlp_ground_decoder_reads_the_whole_train_and_is_in_the_tag(tokens):
    torch.manual_seed(0)
    link = build_link("spike", dim=DIM, code_dim=8, num_steps=3, decoder_hidden=16).eval()
    spikes = link.encode(tokens)
    y = link.decode(spikes)
    assert y.shape == tokens.shape
    late = spikes.clone()
    late[:, :, :, 0] = torch.roll(spikes[:, :, :, 0], 1, dims=0)  # same rates, other timing
    assert not torch.equal(late, spikes)  # channel 0 fires at other steps somewhere
    assert not torch.allclose(link.decode(late), y)  # the MLP sees when spikes came
    payloads = link.compress(tokens)
    assert torch.equal(link.decompress(payloads, tokens.shape), y)
    linear = SpikeLink(DIM, code_dim=8, num_steps=3)
    linear.encoder.load_state_dict(link.encoder.state_dict())
    with pytest.raises(ValueError, match="configuration"):
        linear.decompress(payloads, tokens.shape)
    assert SpikeLink.cut_kwargs(DIM, TOKENS, latent_dim=8, hidden_dim=32)["decoder_hidden"] == 32
    with pytest.raises(ValueError, match="decoder_hidden"):
        SpikeLink(DIM, decoder_hidden=0)


def test_a_range_coded_body_with_non_binary_symbols_is_refused(tokens):
    from encoders.rans import encode_stream

    link = _skewed_link()
    link.fit_prior(_train_tokens().split(64))
    tables = link.coder_tables()
    slots = torch.arange(2 * TOKENS * 8)
    symbols = torch.zeros(len(slots), dtype=torch.int32)
    symbols[3] = 2  # CompressAI codes it through its escape path; a spike link never sends it
    body = encode_stream([(symbols, slots, tables)])
    payload = pack_payload(SPIKE_CODEC_ID, link.wire_tag(), TOKENS, DIM, body, flags=FLAG_RANS)
    with pytest.raises(ValueError, match="other than 0 and 1"):
        link.decompress([payload], (TOKENS, DIM))
    with pytest.raises(ValueError, match="no prior"):
        _skewed_link(prior=False).fit_prior([torch.zeros(1, TOKENS, DIM)])


def test_merged_units_code_neighbouring_tokens_together(tokens):
    """``merge_tokens=2``: a 4 x 4 grid becomes 4 units of 2 x 2 tokens, each with its own k
    spikes; the round trip stays exact, with and without the prior, and only the tokens of a
    unit change when its spikes do."""
    torch.manual_seed(0)
    link = SpikeLink(DIM, code_dim=8, num_steps=2, num_tokens=TOKENS, merge_tokens=2,
                     prior=True, decoder_hidden=16).eval()
    spikes = link.encode(tokens)
    assert spikes.shape == (2, 3, 4, 8) and link.num_units == 4
    assert link.encoder.in_features == 4 * DIM and link.bits_per_token() == 2 * 8 / 4
    assert link.firing_probability().shape == (2, 4, 8)
    y = link.decode(spikes)
    assert y.shape == tokens.shape
    flipped = spikes.clone()
    flipped[:, :, 0] = 1 - flipped[:, :, 0]  # unit 0: tokens 0, 1, 4, 5 of the 4 x 4 grid
    changed = (link.decode(flipped) - y).abs().sum(-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == [0, 1, 4, 5]
    for prior in (False, True):
        if prior:
            link.fit_prior(_train_tokens().split(64))
        else:
            link.prior = False
        payloads = link.compress(tokens)
        with torch.no_grad():
            assert torch.equal(link.decompress(payloads, tokens.shape), link(tokens)["y_hat"])
        link.prior = True
    token_link = SpikeLink(DIM, code_dim=8, num_steps=2, num_tokens=TOKENS, prior=True,
                           decoder_hidden=16)
    assert token_link.wire_tag() != link.wire_tag()  # the merge is in the configuration tag


def test_merged_configurations_that_cannot_exist_are_refused(tokens):
    with pytest.raises(ValueError, match="needs num_tokens"):
        SpikeLink(DIM, merge_tokens=2)
    with pytest.raises(ValueError, match="multiple of 3"):
        SpikeLink(DIM, num_tokens=TOKENS, merge_tokens=3)
    with pytest.raises(ValueError, match="bits per unit"):  # 4 tokens x 32 bits x DIM
        SpikeLink(DIM, code_dim=4 * 32 * DIM, num_steps=1, num_tokens=TOKENS, merge_tokens=2)
    link = SpikeLink(DIM, code_dim=8, num_steps=1, num_tokens=TOKENS, merge_tokens=2)
    with pytest.raises(ValueError, match="grid of 16 tokens"):
        link.compress(torch.randn(1, 4, DIM))
    assert SpikeLink.cut_kwargs(DIM, TOKENS, merge_tokens=2)["merge_tokens"] == 2


def test_a_spiking_hidden_layer_in_the_encoder_adds_on_board_and_round_trips(tokens):
    """``encoder_hidden``: tokens -> dense projection -> hidden spikes -> additions -> output
    spikes. The ledger counts the first layer as MACs and the second as synaptic operations on
    the hidden spikes; payloads round-trip exactly; the width is in the configuration tag."""
    from snn.energy import count_ops

    torch.manual_seed(0)
    link = SpikeLink(DIM, code_dim=8, num_steps=2, num_tokens=TOKENS, prior=True,
                     encoder_hidden=24, decoder_hidden=16)
    out = link(tokens.clone().requires_grad_(True))
    out["y_hat"].pow(2).mean().backward()
    assert link.encoder.weight.grad.abs().sum() > 0  # through both surrogates
    assert link.encoder_out.weight.grad.abs().sum() > 0
    link.eval()
    spikes = link.encode(tokens)
    assert spikes.shape == (2, 3, TOKENS, 8) and set(spikes.unique().tolist()) <= {0.0, 1.0}
    link.fit_prior(_train_tokens().split(64))
    payloads = link.compress(tokens)
    with torch.no_grad():
        assert torch.equal(link.decompress(payloads, tokens.shape), link(tokens)["y_hat"])
    class OnBoard(torch.nn.Module):  # what the satellite runs: the encoder
        def __init__(self) -> None:
            super().__init__()
            self.link = link

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.link.encode(x)

    ops = {r.name: r for r in count_ops(OnBoard(), tokens).layers}
    ops = {name.removeprefix("link."): r for name, r in ops.items()}
    assert ops["encoder"].macs == 3 * TOKENS * DIM * 24 and ops["encoder"].synops == 0
    hidden_spikes = ops["encoder_lif"].spikes
    assert ops["encoder_out"].macs == 0 and ops["encoder_out"].synops == hidden_spikes * 8
    plain = SpikeLink(DIM, code_dim=8, num_steps=2, num_tokens=TOKENS, prior=True,
                      decoder_hidden=16)
    assert plain.wire_tag() != link.wire_tag() and "encoder_hidden" not in plain.config()
    assert link.config()["encoder_hidden"] == 24
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="encoder_hidden"):
            SpikeLink(DIM, encoder_hidden=bad)
