"""Bad payloads (truncated, corrupted, foreign, mismatched) raise a clear ValueError."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
import torch

from encoders import HEADER_SIZE, build_link, list_links
from encoders.header import FORMAT_VERSION, pack_payload


def _ready(make_link, name, tokens):
    link = make_link(name).eval()
    link.update(force=True)
    return link, link.compress(tokens)


def _rewrite(payload: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Change one header field and keep everything else (including the body CRC) valid."""
    buf = bytearray(payload)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


@pytest.mark.parametrize("name", list_links())
def test_truncated_payload(make_link, tokens, name):
    link, payloads = _ready(make_link, name, tokens)
    with pytest.raises(ValueError, match="payload 0: truncated, body has"):
        link.decompress([payloads[0][:-1]], tokens.shape[1:])
    with pytest.raises(ValueError, match="payload 1: truncated, 5 bytes is shorter"):
        link.decompress([payloads[0], payloads[1][:5]], tokens.shape[1:])
    with pytest.raises(ValueError, match="trailing bytes"):
        link.decompress([payloads[0] + b"\0"], tokens.shape[1:])


@pytest.mark.parametrize("name", list_links())
def test_corrupted_body_fails_the_crc(make_link, tokens, name):
    link, payloads = _ready(make_link, name, tokens)
    bad = bytearray(payloads[0])
    bad[-1] ^= 0x10
    with pytest.raises(ValueError, match="CRC32 mismatch"):
        link.decompress([bytes(bad)], tokens.shape[1:])


@pytest.mark.parametrize("name", list_links())
def test_random_damage_never_crashes(make_link, tokens, name):
    """Any single flipped byte or cut gives a ValueError, never garbage or another exception."""
    link, payloads = _ready(make_link, name, tokens)
    rng = random.Random(0)
    payload = payloads[0]
    for _ in range(40):
        bad = bytearray(payload)
        pos = rng.randrange(len(bad))
        bad[pos] ^= rng.randrange(1, 256)
        with pytest.raises(ValueError):
            link.decompress([bytes(bad)], tokens.shape[1:])
        with pytest.raises(ValueError):
            link.decompress([payload[: rng.randrange(len(payload))]], tokens.shape[1:])


def test_header_mismatches_name_what_was_expected(make_link, tokens):
    link, payloads = _ready(make_link, "int8", tokens)
    p, shape = payloads[0], tokens.shape[1:]
    with pytest.raises(ValueError, match=r"bad magic b'XX', expected b'SE'"):
        link.decompress([b"XX" + p[2:]], shape)
    with pytest.raises(ValueError, match=f"format version 9, expected {FORMAT_VERSION}"):
        link.decompress([_rewrite(p, 2, ">B", 9)], shape)
    with pytest.raises(ValueError, match="encoded by codec 'int8', expected 'int4'"):
        make_link("int4").decompress([p], shape)
    with pytest.raises(ValueError, match="encoded by codec 'unknown codec id 200'"):
        link.decompress([_rewrite(p, 3, ">B", 200)], shape)
    with pytest.raises(ValueError, match="CRC32 mismatch"):  # flags are covered by the CRC
        link.decompress([_rewrite(p, 4, ">B", 0x80)], shape)
    with pytest.raises(ValueError, match="token shape 16x32, expected 8x64"):
        link.decompress([p], (8, 64))
    with pytest.raises(ValueError, match="configuration tag"):
        make_link("int8", granularity="sample").decompress([p], shape)
    with pytest.raises(ValueError, match="shape says 2 samples but got 3 payloads"):
        link.decompress(payloads, (2, *shape))
    with pytest.raises(ValueError, match="list of bytes"):
        link.decompress(p, shape)
    with pytest.raises(ValueError, match="expected bytes, got str"):
        link.decompress(["abc"], shape)


def test_codec_config_mismatch(make_link, tokens):
    link, payloads = _ready(make_link, "factorized", tokens)
    other = make_link("factorized", latent_dim=4)
    other.update(force=True)
    with pytest.raises(ValueError, match="configuration tag .* different constructor arguments"):
        other.decompress(payloads, tokens.shape)
    with pytest.raises(ValueError, match="built for 16x32 tokens, got 8x32"):
        link.decompress(payloads, (8, 32))


def test_valid_crc_but_bad_inner_layout(make_link, tokens):
    """Bodies that pass the header checks but are malformed inside still fail clearly."""
    link, payloads = _ready(make_link, "hyperprior", tokens)
    forged = pack_payload(link.codec_id, link.wire_tag(), 16, 32, b"\0" * 4)
    with pytest.raises(ValueError, match="body of 4 bytes is shorter than the 8-byte coder state"):
        link.decompress([forged], tokens.shape[1:])
    int8 = build_link("int8")
    forged = pack_payload(int8.codec_id, int8.wire_tag(), 16, 32, b"\0" * 600, flags=0x80)
    with pytest.raises(ValueError, match="unknown flags 0x80"):
        int8.decompress([forged], tokens.shape[1:])
    for body, flags, msg in [
        (b"\x01\x02", 0, "body has 2 bytes after inflating"),
        (b"not zlib", 1, "does not inflate"),
        (zlib.compress(b"short"), 1, "body has 5 bytes after inflating"),
    ]:
        forged = pack_payload(int8.codec_id, int8.wire_tag(), 16, 32, body, flags)
        with pytest.raises(ValueError, match=msg):
            int8.decompress([forged], tokens.shape[1:])


@pytest.mark.parametrize("name", ["factorized", "hyperprior"])
def test_stale_tables_are_refused(make_link, tokens, name):
    link = make_link(name)
    with pytest.raises(RuntimeError, match=r"call update\(force=True\)"):
        link.compress(tokens)
    assert link.update() is True and link.update() is False
    payloads = link.compress(tokens)
    opt = torch.optim.SGD([p for n, p in link.named_parameters() if "entropy" in n], lr=0.1)
    link.train()
    link(tokens)["likelihoods"]["y" if name == "factorized" else "z"].log().sum().neg().backward()
    opt.step()
    with pytest.raises(RuntimeError, match="older than the entropy models"):
        link.decompress(payloads, tokens.shape)
    assert link.update(force=True) is True
    # the weights changed since these payloads were made: refused, not decoded to garbage
    with pytest.raises(ValueError, match="different weights or entropy tables"):
        link.decompress(payloads, tokens.shape)
    link.decompress(link.compress(tokens), tokens.shape)


def test_header_size_is_small():
    assert HEADER_SIZE == 19


@pytest.mark.parametrize("name", list_links())
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_tokens_are_refused_before_coding(make_link, tokens, name, bad):
    """One bit flip in on-board memory can make a token NaN or inf: every link refuses it (a
    learned codec's rANS coder would otherwise spin for ever)."""
    link, _ = _ready(make_link, name, tokens)
    damaged = tokens.clone()
    damaged[0, 0, 0] = bad
    with pytest.raises(ValueError, match="finite"):
        link.compress(damaged)


@pytest.mark.parametrize("name", ["factorized", "hyperprior"])
def test_huge_tokens_give_an_error_not_a_hang(make_link, tokens, name):
    link, _ = _ready(make_link, name, tokens)
    damaged = tokens.clone()
    damaged[0, 0, :] = 1e30
    with pytest.raises(ValueError, match="outside"):
        link.compress(damaged)


def test_a_valid_payload_carrying_nan_is_refused(make_link, tokens):
    """A payload whose header and CRC check out but whose body decodes to NaN."""
    link = make_link("identity")
    damaged = tokens[:1].clone()
    damaged[0, 0, 0] = float("nan")
    (body, flags), = link._encode(damaged)
    payload = pack_payload(link.codec_id, link.wire_tag(), *tokens.shape[1:], body, flags)
    with pytest.raises(ValueError, match="decode to NaN"):
        link.decompress([payload], tokens.shape[1:])


@pytest.mark.parametrize("name", list_links())
def test_float64_tokens_code_like_float32(make_link, tokens, name):
    link, payloads = _ready(make_link, name, tokens)
    assert link.compress(tokens.double()) == payloads


def test_coding_runs_without_tf32_and_restores_the_settings(make_link, tokens, monkeypatch):
    """A GPU's TF32 convolutions moved decoded tokens by 1.8e-3 against the CPU (H200); coding in
    IEEE float32 keeps a payload's tokens the same on every device up to float32 rounding, and the
    caller's settings come back afterwards, also when decoding fails."""
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    link = make_link("factorized")
    link.update(force=True)
    seen = []
    for name in ("_encode", "_decode"):
        original = getattr(link, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(tuple(flag.fp32_precision for flag in flags))
            return _original(*args, **kwargs)

        monkeypatch.setattr(link, name, spy)
    saved = [flag.fp32_precision for flag in flags]
    try:
        for flag in flags:
            flag.fp32_precision = "tf32"
        payloads = link.compress(tokens)
        link.decompress(payloads, tuple(tokens.shape[1:]))
        assert seen == [("ieee", "ieee"), ("ieee", "ieee")]
        assert [flag.fp32_precision for flag in flags] == ["tf32", "tf32"]
        with pytest.raises(ValueError):
            link.decompress([payloads[0][:-3]], tuple(tokens.shape[1:]))
        assert [flag.fp32_precision for flag in flags] == ["tf32", "tf32"]
    finally:
        for flag, value in zip(flags, saved, strict=True):
            flag.fp32_precision = value


@pytest.mark.parametrize("precision", ["high", "medium"])
def test_coding_leaves_the_legacy_matmul_setting_readable(precision):
    """Lightning reads ``get_float32_matmul_precision`` (the legacy API) when it sets up a
    trainer; coding in between must neither change nor break it."""
    from encoders.base import ieee_float32

    saved = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision(precision)
        with ieee_float32():
            pass
        assert torch.get_float32_matmul_precision() == precision
    finally:
        torch.set_float32_matmul_precision(saved)
