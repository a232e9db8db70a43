"""Fuzz every registered link module: no tokens or bytes make it hang, crash or return garbage.

Each link is built small for the tiny ``[16, 32]`` cut the encoder tests use (learned codecs
untrained, their entropy tables updated), once per session. Properties, per link:

* finite tokens of any scale (zeros, denormals, 1e30, the float32 extremes) either compress to
  payloads that decompress to finite float32 tokens of the right shape (exactly what ``forward``
  gives for the training-free links, within half a quantisation step for int8/int4), or raise a
  ``ValueError`` that names the problem; never a payload that then fails to decode;
* tokens with NaN or infinity anywhere (or float64 values beyond float32) raise ``ValueError``
  before any coder runs;
* truncated, extended, bit-flipped, overwritten, random, foreign and re-signed payloads (the
  header's length and CRC fixed after the damage, so the codec's own decoder sees the bytes)
  raise ``ValueError`` or decode to finite tokens of the right shape;
* tokens of other dtypes, shapes and types, and garbage ``payloads`` / ``shape`` arguments to
  ``decompress``, give ``ValueError`` or work;
* a deflate bomb (a small body that inflates far beyond the tokens it claims) is refused
  without inflating it.
"""

from __future__ import annotations

import re
import struct
import tracemalloc
import zlib
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import snn.link  # noqa: F401  (registers "spike": plugin links are fuzzed too)
from encoders import HEADER_SIZE, LinkModule, build_for_cut, link_spec, list_links
from encoders.header import FLAG_ZLIB

DIM, NUM_TOKENS = 32, 16
TINY_OPTIONS: dict[str, object] = {
    "latent_dim": 8, "hidden_dim": 32, "hyper_dim": 4, "hyper_hidden_dim": 16, "num_steps": 4,
}
LINKS = list_links()
F32_MAX = float(torch.finfo(torch.float32).max)
F16_MAX = 65504.0
_CRC_AT = HEADER_SIZE - 4
_LENGTH_AT = _CRC_AT - 4


@cache
def ready_link(name: str) -> LinkModule:
    """A small seeded instance of ``name`` for the ``[16, 32]`` cut, in eval mode, tables built."""
    torch.manual_seed(0)
    link = build_for_cut(name, DIM, NUM_TOKENS, TINY_OPTIONS).eval()
    link.update(force=True)
    return link


def describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        if x.numel() and (x.is_floating_point() or x.is_complex()):
            finite = torch.isfinite(x).all().item()
            return (f"{x.dtype} tensor {tuple(x.shape)} finite={finite} "
                    f"absmax={x.detach().abs().max().item():.3g}")
        return f"{x.dtype} tensor {tuple(x.shape)}"
    text = repr(x)
    return text if len(text) < 200 else text[:200] + "..."


# ----------------------------------------------------------------------------- strategies
EXTREMES = [0.0, -0.0, 1e-45, -1e-45, 1.2e-38, 2.0**-24, 1.0, -1.0, 65504.0, 65520.0, -65504.0,
            1e30, -1e30, 1e38, F32_MAX, -F32_MAX]
SPECIAL_FINITE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.sampled_from(EXTREMES))
SCALES = st.one_of(
    st.sampled_from([0.0, 1e-40, 1e-30, 1e-6, 1e-3, 1.0, 40.0, 3e4, 7e4, 1e6, 1e15, 1e30, 1e38]),
    st.floats(min_value=1e-45, max_value=1e38),
)


@st.composite
def finite_tokens(draw, batch: st.SearchStrategy[int] | None = None,
                  num_tokens: int = NUM_TOKENS, dim: int = DIM) -> torch.Tensor:
    """``[B, N, D]`` float32 tokens, all finite: a seeded base pattern at a drawn scale and
    offset, with a few drawn special values (denormals, float16 and float32 extremes) put in."""
    b = draw(st.integers(1, 3) if batch is None else batch)
    kind = draw(st.sampled_from(["randn", "zeros", "const", "ramp", "sparse", "extremes"]))
    scale, offset = draw(SCALES), draw(st.sampled_from([0.0, 1.0, -5e4, 1e20]) | SPECIAL_FINITE)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    shape = (b, num_tokens, dim)
    if kind == "randn":
        base = torch.randn(shape, generator=g, dtype=torch.float64)
    elif kind == "zeros":
        base = torch.zeros(shape, dtype=torch.float64)
    elif kind == "const":
        base = torch.ones(shape, dtype=torch.float64)
    elif kind == "ramp":
        base = torch.linspace(-1, 1, b * num_tokens * dim, dtype=torch.float64).view(shape)
    elif kind == "sparse":
        base = torch.randn(shape, generator=g, dtype=torch.float64)
        base = base * (torch.rand(shape, generator=g, dtype=torch.float64) < 0.05)
    else:  # values picked from the float32 / float16 extremes and denormals
        picks = torch.tensor(EXTREMES, dtype=torch.float64)
        base = picks[torch.randint(len(EXTREMES), shape, generator=g)]
        scale, offset = 1.0, 0.0
    x = (base * scale + offset).clamp(-F32_MAX, F32_MAX).float()
    flat = x.view(-1)
    for _ in range(draw(st.integers(0, 6)) if flat.numel() else 0):
        flat[draw(st.integers(0, flat.numel() - 1))] = draw(SPECIAL_FINITE)
    return x


@st.composite
def moderate_tokens(draw, batch: st.SearchStrategy[int] | None = None) -> torch.Tensor:
    """ViT-like tokens ``[B, 16, 32]`` (seeded normal values at a scale of 1e-3 to 100), which
    every link codes: the starting point of the payload damage."""
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.sampled_from([1e-3, 0.1, 1.0, 3.0, 100.0]))
    b = draw(st.integers(1, 2) if batch is None else batch)
    return torch.randn(b, NUM_TOKENS, DIM, generator=g) * scale


@st.composite
def non_finite_tokens(draw) -> torch.Tensor:
    """Finite tokens with NaN, +inf or -inf at one or more drawn positions (float32), or
    float64 tokens holding a value beyond the float32 range."""
    x = draw(finite_tokens())
    if draw(st.booleans()):
        x = x.double()
        flat = x.view(-1)
        for _ in range(draw(st.integers(1, 4))):
            flat[draw(st.integers(0, flat.numel() - 1))] = draw(st.sampled_from(
                [1e39, -1e39, 3.5e38, 1e300, -1e300, float("nan"), float("inf"), -float("inf")]))
        return x
    flat = x.view(-1)
    for _ in range(draw(st.integers(1, 4))):
        flat[draw(st.integers(0, flat.numel() - 1))] = draw(
            st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    return x


def re_sign(payload: bytes, body: bytes | None = None, **fields: int) -> bytes:
    """``payload`` with header fields changed and/or a new body, length and CRC32 made valid
    again, so only the codec's own decoder can notice the damage."""
    head = bytearray(payload[:_LENGTH_AT])
    offsets = {"version": (2, ">B"), "codec": (3, ">B"), "flags": (4, ">B"),
               "num_tokens": (5, ">H"), "dim": (7, ">H"), "config": (9, ">H")}
    for key, value in fields.items():
        at, fmt = offsets[key]
        struct.pack_into(fmt, head, at, value)
    body = payload[HEADER_SIZE:] if body is None else body
    head += struct.pack(">I", len(body))
    return bytes(head) + struct.pack(">I", zlib.crc32(body, zlib.crc32(bytes(head)))) + body


@st.composite
def damaged_payload(draw, payload: bytes) -> tuple[str, bytes, bool]:
    """``(how, bytes, signed)``: ``signed`` when the header still checks out (length, CRC)."""
    how = draw(st.sampled_from(["truncate", "extend", "flip", "overwrite", "random", "magic",
                                "signed-body", "signed-flip", "signed-random", "signed-header",
                                "signed-cut", "signed-extend"]))
    body = payload[HEADER_SIZE:]
    if how == "truncate":
        return how, payload[:draw(st.integers(0, len(payload) - 1))], False
    if how == "extend":
        return how, payload + draw(st.binary(min_size=1, max_size=64)), False
    if how == "flip":
        bad = bytearray(payload)
        for _ in range(draw(st.integers(1, 8))):
            bad[draw(st.integers(0, len(bad) - 1))] ^= 1 << draw(st.integers(0, 7))
        return how, bytes(bad), False
    if how == "overwrite":
        start = draw(st.integers(0, len(payload) - 1))
        patch = draw(st.binary(min_size=1, max_size=32))
        return how, payload[:start] + patch + payload[start + len(patch):], False
    if how == "random":
        return how, draw(st.binary(max_size=300)), False
    if how == "magic":
        return how, payload[:HEADER_SIZE] + draw(st.binary(max_size=300)), False
    if how == "signed-body":
        return how, re_sign(payload, draw(st.binary(max_size=max(64, 2 * len(body))))), True
    if how == "signed-flip":
        bad = bytearray(body)
        for _ in range(draw(st.integers(1, 8)) if bad else 0):
            bad[draw(st.integers(0, len(bad) - 1))] ^= 1 << draw(st.integers(0, 7))
        return how, re_sign(payload, bytes(bad)), True
    if how == "signed-random":
        return how, re_sign(payload, draw(st.binary(min_size=len(body), max_size=len(body)))), True
    if how == "signed-cut":
        return how, re_sign(payload, body[:draw(st.integers(0, max(0, len(body) - 1)))]), True
    if how == "signed-extend":
        return how, re_sign(payload, body + draw(st.binary(min_size=1, max_size=64))), True
    fields = draw(st.dictionaries(
        st.sampled_from(["version", "codec", "flags", "num_tokens", "dim", "config"]),
        st.integers(0, 255), min_size=1))
    return how, re_sign(payload, **fields), True


# ----------------------------------------------------------------------------- checks
def check_decoded(link: LinkModule, out: object, shape: tuple[int, int, int]) -> torch.Tensor:
    assert isinstance(out, torch.Tensor), f"{link.link_name}: decompress returned {type(out)}"
    assert tuple(out.shape) == shape, f"{link.link_name}: decoded {tuple(out.shape)}, not {shape}"
    assert out.dtype == torch.float32, f"{link.link_name}: decoded {out.dtype}"
    assert torch.isfinite(out).all(), f"{link.link_name}: decoded NaN or inf"
    return out


def check_payloads(link: LinkModule, payloads: object, batch: int) -> list[bytes]:
    assert isinstance(payloads, list) and len(payloads) == batch, \
        f"{link.link_name}: compress gave {type(payloads).__name__} of {len(payloads)}, not {batch}"
    assert all(isinstance(p, bytes) for p in payloads)
    return payloads


def uniform_error_bound(link: LinkModule, x: torch.Tensor) -> torch.Tensor:
    """Half a quantisation step of ``UniformQuantLink`` per value, with the float16 rounding of
    offset and step and float32 rounding allowed for (float64 arithmetic)."""
    x = x.double()
    dims = (-1,) if link.granularity == "token" else (-2, -1)
    lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    span = hi - lo + lo.abs() * 2.0**-9 + 2.0**-23
    step = (span / link.levels).clamp_min(2.0**-24) * (1 + 2.0**-9) + 2.0**-24
    return 0.5 * step + 8 * 2.0**-24 * x.abs().amax(dim=dims, keepdim=True)


def check_faithful(name: str, link: LinkModule, x: torch.Tensor, decoded: torch.Tensor) -> None:
    """What each training-free link promises about ``decompress(compress(x))``."""
    spec = link_spec(name)
    x32 = x.float()
    if spec.lossless:
        assert torch.equal(decoded, x32), f"{name}: lossless link changed the tokens"
        return
    if name == "float16":
        expected = x32.clamp(-F16_MAX, F16_MAX).half().float()
        assert torch.equal(decoded, expected), f"{name}: not the float16-rounded tokens"
        return
    with torch.no_grad():
        forward = link(x32)["y_hat"]
    scale = 1e-5 * (1.0 + forward.abs())
    assert ((decoded - forward).abs() <= scale).all(), \
        f"{name}: decompress(compress(x)) differs from forward(x) by " \
        f"{(decoded - forward).abs().max().item():.3g}"
    if hasattr(link, "levels"):
        err = (decoded.double() - x32.double()).abs()
        bound = uniform_error_bound(link, x32)
        assert (err <= bound).all(), \
            f"{name}: error {err.max().item():.3g} exceeds half a step ({bound.min().item():.3g})"


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("name", LINKS)
def test_finite_tokens_roundtrip_or_refuse(fuzz, name):
    link, spec = ready_link(name), link_spec(name)

    @fuzz.settings()
    @given(x=finite_tokens())
    def prop(x):
        with fuzz.case(lambda: f"{name}.compress({describe(x)})"):
            try:
                payloads = link.compress(x)
            except ValueError as err:
                assert str(err), f"{name}: empty ValueError"
                return
            payloads = check_payloads(link, payloads, len(x))
            decoded = check_decoded(link, link.decompress(payloads, x.shape), tuple(x.shape))
            again = link.decompress(payloads, x.shape[1:])
            assert torch.equal(again, decoded), f"{name}: (N, D) and (B, N, D) shapes disagree"
            singly = torch.cat([link.decompress([p], x.shape[1:]) for p in payloads])
            assert torch.allclose(singly, decoded, rtol=1e-5, atol=1e-5), \
                f"{name}: a payload decodes differently alone and in a batch"
            if not spec.learned or name == "spike":
                check_faithful(name, link, x, decoded)

    prop()


@pytest.mark.parametrize("name", LINKS)
def test_non_finite_tokens_are_refused_before_coding(fuzz, name):
    link = ready_link(name)

    @fuzz.settings(scale=0.5)
    @given(x=non_finite_tokens())
    def prop(x):
        calls = []
        encode = link._encode

        def spy(tokens):
            calls.append(tokens)
            return encode(tokens)

        with fuzz.case(lambda: f"{name}.compress({describe(x)})"):
            link._encode = spy
            try:
                with pytest.raises(ValueError, match=re.compile("nan|inf|finite|range", re.I)):
                    link.compress(x)
            finally:
                del link._encode
            assert not calls, f"{name}: non-finite tokens reached the coder"

    prop()


@pytest.mark.parametrize("name", LINKS)
def test_damaged_payloads_raise_or_decode_finite(fuzz, name):
    link = ready_link(name)

    @fuzz.settings()
    @given(data=st.data(), x=moderate_tokens())
    def prop(data, x):
        what = [f"{name}.compress({describe(x)})"]
        with fuzz.case(lambda: what[-1]):
            payloads = link.compress(x)
            which = data.draw(st.integers(0, len(payloads) - 1))
            how, bad, signed = data.draw(damaged_payload(payloads[which]))
            batch = [*payloads[:which], bad, *payloads[which + 1:]]
            what.append(f"{name}.decompress({how} payload {which}: {bad[:64]!r}...)")
            try:
                out = link.decompress(batch, x.shape[1:])
            except ValueError as err:
                assert str(err)
                return
            if bad != payloads[which]:
                assert signed, f"{name}: {how} damage got past the header checks"
            check_decoded(link, out, tuple(x.shape))

    prop()


@pytest.mark.parametrize("name", LINKS)
def test_foreign_payloads_are_refused(fuzz, name):
    link = ready_link(name)
    others = [n for n in LINKS if n != name]

    @fuzz.settings(scale=0.5)
    @given(other=st.sampled_from(others), x=moderate_tokens(batch=st.just(1)))
    def prop(other, x):
        with fuzz.case(lambda: f"{name}.decompress(payload of {other})"):
            foreign = ready_link(other).compress(x)
            with pytest.raises(ValueError, match=re.escape(f"expected {name!r}")):
                link.decompress(foreign, x.shape[1:])

    prop()


ODD_DTYPES = [torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.int64, torch.uint8,
              torch.bool, torch.complex64]


@st.composite
def odd_tokens(draw) -> object:
    """Tokens of other dtypes, shapes, layouts and types than ``[B, 16, 32]`` float32."""
    kind = draw(st.sampled_from(["dtype", "shape", "layout", "object"]))
    if kind == "object":
        return draw(st.sampled_from([
            None, 3.0, "tokens", b"\x00" * 16, [[0.0] * DIM] * NUM_TOKENS,
            np.zeros((1, NUM_TOKENS, DIM), dtype=np.float32), {"tokens": 1},
        ]))
    if kind == "shape":
        dims = draw(st.lists(st.integers(0, 20), max_size=4))
        if len(dims) == 3 and draw(st.booleans()):
            dims[1:] = [NUM_TOKENS, DIM]
        x = torch.randn(dims, generator=torch.Generator().manual_seed(draw(st.integers(0, 99))))
        return x * draw(SCALES)
    x = draw(finite_tokens(batch=st.integers(0, 3)))
    if kind == "layout":
        layout = draw(st.sampled_from(["transposed", "expanded", "requires_grad", "sliced"]))
        if layout == "transposed":
            return x.transpose(1, 2).contiguous().transpose(1, 2)
        if layout == "expanded":
            return x[:1].expand(3 if len(x) else 0, -1, -1)
        if layout == "requires_grad":
            return x.clone().requires_grad_(True)
        return torch.cat([x, x], dim=2)[:, :, ::2]
    dtype = draw(st.sampled_from(ODD_DTYPES))
    if dtype == torch.float64:
        return x.double() * draw(st.sampled_from([1.0, 1e10, 1e-50]))
    return x.to(dtype)


@pytest.mark.parametrize("name", LINKS)
def test_odd_tokens_raise_or_work(fuzz, name):
    link = ready_link(name)

    @fuzz.settings(scale=0.5)
    @given(x=odd_tokens())
    def prop(x):
        with fuzz.case(lambda: f"{name}.compress({describe(x)})"):
            try:
                payloads = link.compress(x)
            except ValueError as err:
                assert str(err)
                return
            assert isinstance(x, torch.Tensor) and x.dim() == 3, f"{name} coded {describe(x)}"
            assert x.is_floating_point(), f"{name} coded {x.dtype} tokens"
            payloads = check_payloads(link, payloads, x.shape[0])
            decoded = check_decoded(link, link.decompress(payloads, x.shape), tuple(x.shape))
            if link_spec(name).lossless:
                assert torch.equal(decoded, x.detach().float())

    prop()


GARBAGE = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=8),
    st.binary(max_size=8), st.lists(st.integers(-5, 5), max_size=3),
)
SHAPES = st.one_of(
    st.just((NUM_TOKENS, DIM)),
    st.tuples(st.integers(-2, 2**17), st.integers(-2, 2**17)),
    st.tuples(st.integers(-1, 3), st.just(NUM_TOKENS), st.just(DIM)),
    st.lists(GARBAGE, max_size=4).map(tuple),
    st.tuples(st.just(NUM_TOKENS), GARBAGE),
    st.tuples(st.floats(0, 40), st.just(DIM)),
    GARBAGE,
    st.just(torch.Size([NUM_TOKENS, DIM])),
    st.just(np.array([NUM_TOKENS, DIM])),
)


@pytest.mark.parametrize("name", LINKS)
def test_decompress_arguments_raise_or_work(fuzz, name):
    link = ready_link(name)
    good = link.compress(torch.randn(2, NUM_TOKENS, DIM, generator=torch.Generator().manual_seed(3)))

    payload_lists = st.one_of(
        st.just(good), st.just(good[:1]), st.just([]), st.just(good[0]), st.just(tuple(good)),
        st.just(iter(good)), st.just(dict(enumerate(good))), st.just(np.array(good)),
        st.just(good[0].decode("latin-1")),
        st.lists(st.one_of(st.sampled_from(good), st.just(bytearray(good[0])),
                           st.just(memoryview(good[1])), GARBAGE), max_size=3),
        GARBAGE,
    )

    @fuzz.settings(scale=0.5)
    @given(payloads=payload_lists, shape=SHAPES)
    def prop(payloads, shape):
        with fuzz.case(lambda: f"{name}.decompress({describe(payloads)}, {describe(shape)})"):
            try:
                out = link.decompress(payloads, shape)
            except ValueError as err:
                assert str(err)
                return
            dims = tuple(int(s) for s in shape)
            n, d = dims[-2:]
            assert isinstance(out, torch.Tensor) and tuple(out.shape[1:]) == (n, d), \
                f"{name}: decoded {tuple(out.shape)} for shape {shape!r}"
            assert out.dtype == torch.float32 and torch.isfinite(out).all()

    prop()


# ----------------------------------------------------------------------------- deflate bomb
@cache
def deflate_bomb() -> bytes:
    """64 MiB of zeros deflated to about 64 KiB: far beyond any tokens a payload claims."""
    return zlib.compress(bytes(64 * 2**20), 9)


ZLIB_LINKS = [n for n in LINKS if link_spec(n).cls.flag_mask & FLAG_ZLIB]


@pytest.mark.parametrize("name", ZLIB_LINKS)
def test_deflate_bomb_is_refused_without_inflating(fuzz, name):
    link = ready_link(name)
    payload = link.compress(torch.zeros(1, NUM_TOKENS, DIM))[0]
    flags = payload[4] | FLAG_ZLIB
    bomb = re_sign(payload, deflate_bomb(), flags=flags)
    with fuzz.case(f"{name}.decompress(deflate bomb)", timeout_s=20):
        tracemalloc.start()
        try:
            with pytest.raises(ValueError):
                link.decompress([bomb], (NUM_TOKENS, DIM))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * 2**20, f"{name}: inflated {peak / 2**20:.0f} MiB to refuse the payload"
