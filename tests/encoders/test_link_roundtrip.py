"""Real bitstreams: decompress(compress(x)) gives what forward gives in eval mode."""

from __future__ import annotations

import pytest
import torch

from encoders import (
    HEADER_SIZE,
    EntropyLink,
    FactorizedTokenCodec,
    Int4Link,
    Int8Link,
    TokenLayout,
    UniformQuantLink,
    list_links,
    payload_bits,
)


@pytest.mark.parametrize("name", list_links())
def test_roundtrip_matches_forward(make_link, tokens, name):
    link = make_link(name).eval()
    link.update(force=True)
    payloads = link.compress(tokens)
    assert len(payloads) == tokens.shape[0] and all(isinstance(p, bytes) for p in payloads)
    decoded = link.decompress(payloads, tokens.shape)
    with torch.no_grad():
        expected = link(tokens)["y_hat"]
    assert decoded.shape == tokens.shape and decoded.dtype == torch.float32
    if isinstance(link, EntropyLink):
        torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-5)
    else:
        assert torch.equal(decoded, expected)  # the baselines share one quantiser
    # shape may be given without the batch, and each payload decodes on its own
    alone = link.decompress(payloads[1:2], tokens.shape[1:])
    torch.testing.assert_close(alone[0], decoded[1], rtol=0, atol=1e-5)
    assert link.decompress([], tokens.shape[1:]).shape == (0, *tokens.shape[1:])
    assert (payload_bits(payloads) > 8 * HEADER_SIZE).all()


def test_identity_is_exact(make_link, tokens):
    link = make_link("identity")
    payloads = link.compress(tokens)
    assert torch.equal(link.decompress(payloads, tokens.shape), tokens)
    assert len(payloads[0]) == HEADER_SIZE + 4 * tokens[0].numel()


def test_float16_error_and_saturation(make_link, tokens):
    link = make_link("float16")
    big = tokens.clone()
    big[0, 0, 0] = 1e6
    decoded = link.decompress(link.compress(big), big.shape)
    assert decoded[0, 0, 0] == 65504.0
    rest = (decoded - big)[1:]
    assert (rest.abs() <= big[1:].abs() * 2**-11 + 1e-7).all()


@pytest.mark.parametrize("granularity", ["token", "sample"])
@pytest.mark.parametrize("cls", [Int8Link, Int4Link])
def test_uniform_error_is_half_a_step(tokens, cls, granularity):
    link = cls(granularity=granularity)
    decoded = link.decompress(link.compress(tokens), tokens.shape)
    dims = (-1,) if granularity == "token" else (-2, -1)
    span = tokens.amax(dim=dims, keepdim=True) - tokens.amin(dim=dims, keepdim=True)
    step = span / link.levels
    assert ((decoded - tokens).abs() <= 0.5 * step * (1 + 2**-8) + 1e-6).all()


def test_uniform_side_info_and_packing(tokens):
    raw = {
        (bits, gran): len(UniformQuantLink(bits, gran, zlib_level=0).compress(tokens)[0])
        for bits in (8, 4)
        for gran in ("token", "sample")
    }
    n, d = tokens.shape[1:]
    assert raw[8, "token"] == HEADER_SIZE + 4 * n + n * d
    assert raw[8, "sample"] == HEADER_SIZE + 4 + n * d
    assert raw[4, "sample"] == HEADER_SIZE + 4 + n * d // 2
    # an odd number of 4-bit values still round-trips (the last nibble is padding)
    odd = tokens[:, :3, :5]
    link = Int4Link()
    assert torch.equal(link.decompress(link.compress(odd), odd.shape), link(odd)["y_hat"])


def test_uniform_handles_constant_and_huge_tokens():
    link = Int8Link()
    const = torch.full((2, 4, 8), 3.25)
    assert torch.equal(link.decompress(link.compress(const), const.shape), const)
    huge = torch.randn(2, 4, 8) * 1e6  # beyond float16: scale/offset travel as float32
    decoded = link.decompress(link.compress(huge), huge.shape)
    assert torch.isfinite(decoded).all()
    assert ((decoded - huge).abs() <= 0.6 * (huge.amax(-1, True) - huge.amin(-1, True)) / 255).all()
    with pytest.raises(ValueError, match="NaN or inf"):
        link.compress(torch.tensor([[[float("nan")]]]))


def test_zlib_shrinks_redundant_tokens():
    const = torch.zeros(1, 64, 192)
    for name, cls in (("int8", Int8Link), ("int4", Int4Link)):
        assert len(cls().compress(const)[0]) < len(cls(zlib_level=0).compress(const)[0]) / 10, name


def test_baselines_pass_gradients(make_link, tokens):
    for name in ("float16", "int8", "int4"):
        x = tokens.clone().requires_grad_(True)
        make_link(name)(x)["y_hat"].sum().backward()
        assert torch.equal(x.grad, torch.ones_like(x)), name


@pytest.mark.parametrize("prefix", [0, 1])
def test_token_merge_layout(prefix):
    layout = TokenLayout(num_tokens=prefix + 64, dim=3, merge_tokens=2, num_prefix_tokens=prefix)
    x = torch.randn(2, prefix + 64, 3)
    head, units = layout.split(x)
    assert units.shape == (2, 16, 12) and head.shape == (2, prefix, 3)
    assert torch.equal(layout.join(head, units), x)
    # unit 0 holds grid tokens 0, 1, 8, 9 (a 2x2 block of the 8x8 grid)
    grid = x[:, prefix:]
    assert torch.equal(units[:, 0], torch.cat([grid[:, i] for i in (0, 1, 8, 9)], dim=-1))


@pytest.mark.parametrize("name", ["factorized", "hyperprior"])
def test_merged_codec_with_cls_token_roundtrips(make_link, name):
    link = make_link(name, num_tokens=17, num_prefix_tokens=1, merge_tokens=2).eval()
    x = torch.randn(2, 17, 32)
    link.update(force=True)
    with torch.no_grad():
        expected = link(x)["y_hat"]
    torch.testing.assert_close(
        link.decompress(link.compress(x), x.shape), expected, rtol=0, atol=1e-5
    )
    assert link.num_units == 1 + 4


def test_updated_codec_survives_state_dict(make_link, tokens):
    link = make_link("factorized").eval()
    with torch.no_grad():  # as after training: wider quantiles, so larger CDF tables
        link.entropy_bottleneck.quantiles[:, :, 2] += 20.0
    link.update(force=True)
    payloads = link.compress(tokens)
    other = make_link("factorized")
    other.update(force=True)  # tables already sized: loading must resize them
    other.load_state_dict(link.state_dict())
    other.eval().update()
    assert isinstance(other, FactorizedTokenCodec)
    torch.testing.assert_close(
        other.decompress(payloads, tokens.shape), link.decompress(payloads, tokens.shape)
    )
