"""The entropic student at split 0: rate levels in the header, and bitstreams that decode anywhere.

The registry-wide contract tests (test_link_registry, test_link_roundtrip, test_link_payloads) cover
the student as every other link; these pin what only it does: gain units for run-time rate, the
rate index carried in the header, and payloads that do not depend on thread count, batch grouping
or (where a GPU is lent) the device that decodes them.
"""

from __future__ import annotations

import copy

import pytest
import torch

from encoders import build_for_cut, estimated_bits
from encoders.header import pack_payload, unpack_payload
from encoders.student import MAX_RATES, EntropicStudentCodec

from .conftest import DIM, NUM_TOKENS, TINY_OPTIONS


def _student(num_rates: int = 3) -> EntropicStudentCodec:
    torch.manual_seed(0)
    link = build_for_cut("student", DIM, NUM_TOKENS, TINY_OPTIONS, {"num_rates": num_rates})
    return link.eval()


def _toy(batch: int, seed: int) -> torch.Tensor:
    """Structured tokens (rank 4, smooth over the grid) that a tiny codec can learn."""
    basis = torch.randn(4, DIM, generator=torch.Generator().manual_seed(123))
    pos = torch.linspace(-1, 1, NUM_TOKENS)
    shapes = torch.stack([pos, pos**2, torch.sin(3 * pos), torch.ones_like(pos)])
    coeff = torch.randn(batch, 4, 1, generator=torch.Generator().manual_seed(seed))
    return torch.einsum("bkn,kd->bnd", coeff * shapes, basis)


@pytest.fixture(scope="module")
def two_level() -> EntropicStudentCodec:
    """Trained once per module (about 10 s); tests copy it before changing its rate."""
    return _trained_two_level()


def _trained_two_level() -> EntropicStudentCodec:
    """Two levels trained with rate weights 100x apart on structured tokens (MSE + lambda x rate)."""
    link = _student(num_rates=2).train()
    main = [p for n, p in link.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(main, lr=1e-2)
    aux = torch.optim.Adam([link.entropy_bottleneck.quantiles], lr=1e-2)
    lambdas = (1.0, 0.01)  # per bit of the whole sample; level 0 is the coarse one
    for step in range(150):
        level = step % 2
        link.set_rate(level)
        x = _toy(16, step)
        out = link(x)
        loss = torch.nn.functional.mse_loss(out["y_hat"], x) * 100 + lambdas[level] * estimated_bits(out["likelihoods"]).mean() / 100
        opt.zero_grad()
        loss.backward()
        opt.step()
        aux.zero_grad()
        link.aux_loss().backward()
        aux.step()
    link.eval().update(force=True)
    return link


def test_levels_trade_bytes_for_fidelity_and_travel_in_the_header(two_level):
    link = copy.deepcopy(two_level)
    x = _toy(8, 999)
    sizes, errors = [], []
    for level in range(2):
        payloads = link.set_rate(level).compress(x)
        tag = link.wire_tag()
        assert {unpack_payload(p, 18, tag, NUM_TOKENS, DIM, flag_mask=7)[0].flags for p in payloads} == {level}
        link.set_rate(1 - level)  # the decoder's own setting must not matter: the header says
        decoded = link.decompress(payloads, (NUM_TOKENS, DIM))
        link.set_rate(level)
        torch.testing.assert_close(decoded, link(x)["y_hat"], rtol=0, atol=1e-5)
        sizes.append(sum(map(len, payloads)))
        errors.append(torch.nn.functional.mse_loss(decoded, x).item())
    assert sizes[0] < sizes[1], sizes
    assert errors[0] > errors[1], errors


def test_mixed_levels_in_one_batch_decode_each_at_its_own(two_level):
    link = copy.deepcopy(two_level)
    x = _toy(4, 7)
    coarse, fine = link.set_rate(0).compress(x[:2]), link.set_rate(1).compress(x[2:])
    decoded = link.decompress(coarse + fine, (NUM_TOKENS, DIM))
    expected = torch.cat([link.set_rate(0)(x[:2])["y_hat"], link.set_rate(1)(x[2:])["y_hat"]])
    torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-5)


def test_a_rate_index_the_codec_lacks_is_refused(tokens):
    link = _student(num_rates=3)
    link.update(force=True)
    payload = link.compress(tokens[:1])[0]
    _, body = unpack_payload(payload, 18, link.wire_tag(), NUM_TOKENS, DIM, flag_mask=7)
    forged = pack_payload(18, link.wire_tag(), NUM_TOKENS, DIM, body, flags=5)  # CRC recomputed
    with pytest.raises(ValueError, match="rate index 5 is out of range; this codec has 3"):
        link.decompress([forged], (NUM_TOKENS, DIM))
    with pytest.raises(ValueError, match="flag"):  # bits above the rate field
        link.decompress([pack_payload(18, link.wire_tag(), NUM_TOKENS, DIM, body, flags=0x10)],
                        (NUM_TOKENS, DIM))


@pytest.mark.parametrize("bad", [-1, 3, 1.0, "1"])
def test_set_rate_names_the_valid_levels(bad):
    with pytest.raises(ValueError, match=r"0\.\.2"):
        _student(num_rates=3).set_rate(bad)


def test_bad_construction_is_refused():
    with pytest.raises(ValueError, match="num_rates"):
        EntropicStudentCodec(DIM, NUM_TOKENS, num_rates=MAX_RATES + 1)
    with pytest.raises(ValueError, match="square token grid"):
        EntropicStudentCodec(DIM, 15)
    with pytest.raises(ValueError, match="latent_grid=3 must divide the 4x4 token grid"):
        EntropicStudentCodec(DIM, NUM_TOKENS, latent_grid=3)


@pytest.mark.parametrize("grid", [1, 2])
def test_pooled_latent_grids_code_fewer_symbols_and_roundtrip(tokens, grid):
    torch.manual_seed(0)
    link = EntropicStudentCodec(DIM, NUM_TOKENS, latent_dim=8, hidden_dim=16, latent_grid=grid).eval()
    link.update(force=True)
    out = link(tokens)
    assert out["likelihoods"]["y"].shape == (3, 8, grid, grid) and out["y_hat"].shape == tokens.shape
    torch.testing.assert_close(link.decompress(link.compress(tokens), (NUM_TOKENS, DIM)), out["y_hat"],
                               rtol=0, atol=1e-5)


def test_on_board_transform_is_small():
    """At ViT-Small's cut (64 tokens of 192) the analysis costs about 4 MFLOPs per image."""
    from research.models.profile import count_flops

    link = build_for_cut("student", 192, 64, {"latent_dim": 32, "hidden_dim": 64}).eval()
    flops = count_flops(link.on_board, torch.zeros(1, 64, 192))
    assert 3e6 < flops < 5.3e6, flops  # + 4.7 MFLOPs of patch embedding stays under 10


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_decoded_tokens_do_not_depend_on_threads_or_batching(two_level, threads):
    """The ground decodes whatever groups of payloads arrive, with whatever threads it has."""
    link = copy.deepcopy(two_level).set_rate(1)
    x = _toy(6, 3)
    threads(1)
    payloads = link.compress(x)
    one_thread = link.decompress(payloads, (NUM_TOKENS, DIM))
    threads(2)
    two_threads = torch.cat([link.decompress(payloads[i : i + 2], (NUM_TOKENS, DIM)) for i in (0, 2, 4)])
    assert torch.equal(one_thread, two_threads)
    single = torch.cat([link.decompress([p], (NUM_TOKENS, DIM)) for p in payloads])
    assert torch.equal(one_thread, single)


def test_every_payload_decodes_to_the_symbols_the_encoder_quantised(two_level):
    """Encoder floats may round differently elsewhere; the decoder still gets the coded symbols."""
    link = copy.deepcopy(two_level).set_rate(1)
    x = _toy(5, 11)
    for batch in (x, *x.split(1)):
        expected = link(batch)["y_hat"]  # forward quantises exactly as the coder does
        torch.testing.assert_close(link.decompress(link.compress(batch), (NUM_TOKENS, DIM)), expected,
                                   rtol=0, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to decode on another device")
def test_cpu_payloads_decode_on_the_gpu_and_back(two_level):
    link = copy.deepcopy(two_level).set_rate(1)
    x = _toy(6, 3)
    cpu_payloads = link.compress(x)
    cpu_tokens = link.decompress(cpu_payloads, (NUM_TOKENS, DIM))
    gpu = copy.deepcopy(two_level).set_rate(1).cuda()
    gpu.update(force=True)
    assert gpu.compress(x.cuda()) == cpu_payloads  # same symbols from the other device's encoder
    torch.testing.assert_close(gpu.decompress(cpu_payloads, (NUM_TOKENS, DIM)).cpu(), cpu_tokens,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to build tables on")
@pytest.mark.parametrize("name", ["student", "factorized", "hyperprior"])
def test_tables_built_on_the_gpu_equal_the_cpu_tables(name, make_link):
    cpu = make_link(name)
    cpu.update(force=True)
    gpu = copy.deepcopy(cpu).cuda()
    gpu.update(force=True)
    for key, value in cpu.state_dict().items():
        if key.rsplit(".", 1)[-1] in ("_quantized_cdf", "_offset", "_cdf_length"):
            assert torch.equal(value, gpu.state_dict()[key].cpu()), key


def test_forged_payloads_with_valid_crcs_error_or_decode_to_finite_tokens(two_level):
    """The documented limit of a CRC: a forged payload that passes it is a valid payload.

    Random bodies and flags with recomputed CRCs (what an attacker or a damaged store that also
    rewrote the CRC produces) give a clear ``ValueError`` or finite tokens of the right shape at
    the level the header names, never a hang, a crash or NaN; authenticity is issue 24's signatures.
    """
    import random
    import time

    link = copy.deepcopy(two_level)
    rng = random.Random(0)
    tag = link.wire_tag()
    outcomes = {"error": 0, "decoded": 0}
    start = time.perf_counter()
    for _ in range(100):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        forged = pack_payload(18, tag, NUM_TOKENS, DIM, body, flags=rng.randrange(8))
        try:
            out = link.decompress([forged], (NUM_TOKENS, DIM))
        except ValueError:
            outcomes["error"] += 1
        else:
            assert out.shape == (1, NUM_TOKENS, DIM) and torch.isfinite(out).all()
            outcomes["decoded"] += 1
    assert time.perf_counter() - start < 30
    assert outcomes["error"] and outcomes["decoded"]  # both happen: levels 2..7 and short bodies refused
