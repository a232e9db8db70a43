"""Fuzz the serving runtime's request handling: any request gets a response, never an exception.

A tiny random ``satvit_tiny`` catalog (64x64 tiles, 64 tokens of width 32 at the cut) is served
by :class:`research.serving.runtime.InProcessRuntime`, without a codec (bitstreams are identity
payloads) and with ``int8`` at the cut. Every field of a :class:`Request` is drawn either valid
or damaged (wrong types, missing values, NaN and infinite numbers, huge or negative tile counts,
unknown tasks and modalities, random bytes, payloads of another codec, tokens far outside what
an encoder sees), and non-requests are thrown at it too. ``handle`` must return a
:class:`Response` for the request: with an error message, or with finite outputs for exactly
the tasks asked, one row per image. A request whose fields are all valid must be served.
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from encoders import build_link
from research.models import build_backbone
from research.serving.runtime import InProcessRuntime
from research.serving.schema import Request, Response
from research.serving.tasks import build_catalog

MEAN, STD = [0.34, 0.38, 0.41], [0.20, 0.14, 0.12]
BANDS = {"rgb": 3, "ms13": 13}
_ids = itertools.count()


@cache
def catalogs() -> dict[str | None, object]:
    """One tiny random encoder, served without a codec and with int8 at the cut."""
    torch.manual_seed(0)
    vit = build_backbone("satvit_tiny", num_classes=10).eval()
    return {codec: build_catalog(vit, MEAN, STD, cuts=(1,), codec=codec)
            for codec in (None, "int8")}


@cache
def coders() -> dict[str, object]:
    """Links whose payloads the requests carry (the served codec's, and foreign ones)."""
    out = {}
    for name in ("identity", "int8", "float16"):
        link = build_link(name).eval()
        link.update(force=True)
        out[name] = link
    return out


class Drawn:
    """A generated request and whether every one of its fields is valid (None: either)."""

    def __init__(self, request: object, valid: bool | None, what: str) -> None:
        self.request, self.valid, self.what = request, valid, what

    def __repr__(self) -> str:
        return self.what


# ----------------------------------------------------------------------------- fields
GARBAGE = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=6),
    st.binary(max_size=6), st.lists(st.integers(), max_size=2), st.dictionaries(
        st.text(max_size=2), st.integers(), max_size=1), st.just(torch.zeros(2)),
    st.just(np.float64("nan")),
)
NUMBERS = st.one_of(
    st.floats(), st.integers(-2**70, 2**70), st.sampled_from([float("nan"), float("inf"),
                                                              -float("inf"), -0.0, 1e308]),
)


def valid_tasks(known: tuple[str, ...]) -> st.SearchStrategy:
    return st.lists(st.sampled_from(known), min_size=1, max_size=3, unique=True).flatmap(
        lambda ts: st.sampled_from([tuple(ts), list(ts)]))


def damaged_tasks(known: tuple[str, ...]) -> st.SearchStrategy:
    return st.one_of(
        st.just(()), st.just([]), st.sampled_from(known),  # a bare string is not a tuple of tasks
        st.lists(st.one_of(st.sampled_from(known), st.text(max_size=8), GARBAGE), min_size=1,
                 max_size=3).filter(lambda ts: not all(t in known for t in ts)).map(tuple),
        GARBAGE.filter(lambda v: not isinstance(v, (list, tuple)) or not v
                       or not all(t in known for t in v)),
    )


@st.composite
def images(draw, modality: str, damage: bool) -> tuple[object, bool, int]:
    """``(payload, valid, batch)``: uint8 tiles of the modality, or (``damage``) not."""
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    b = draw(st.integers(1, 2))
    bands = BANDS.get(modality, 3) if isinstance(modality, str) else 3
    kind = draw(st.sampled_from(["dtype", "bands", "size", "dims", "empty", "object", "big"])
                if damage else st.just("ok"))
    x = torch.randint(0, 256, (b, bands, 64, 64), dtype=torch.uint8, generator=g)
    if kind == "ok":
        return x, True, b
    if kind == "dtype":
        return x.to(draw(st.sampled_from([torch.float32, torch.int64, torch.bool,
                                          torch.float16]))), False, b
    if kind == "bands":
        return x[:, :1].expand(b, draw(st.sampled_from([1, 2, 4, 12, 14])), 64, 64), False, b
    if kind == "size":
        side = draw(st.sampled_from([0, 1, 32, 63, 65, 128]))
        return torch.zeros(b, bands, side, side, dtype=torch.uint8), False, b
    if kind == "dims":
        return draw(st.sampled_from([x[0], x[None], x[0, 0], torch.tensor(7, dtype=torch.uint8)])
                    ), False, b
    if kind == "empty":
        return x[:0], False, 0
    if kind == "big":
        return torch.zeros(257, bands, 64, 64, dtype=torch.uint8), False, 257
    return draw(st.sampled_from([x.numpy(), x.tolist()[:1], bytes(64), "tiles"]) | GARBAGE
                ), False, b


@st.composite
def bitstreams(draw, served: str, token_shape: tuple[int, int], damage: bool
               ) -> tuple[object, bool | None, int]:
    """``(bitstream, valid, batch)``: payloads of the served codec, or (``damage``) damaged or
    foreign ones, or tokens no encoder produced (``valid`` None)."""
    n, d = token_shape
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    b = draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["extreme", "foreign", "random", "cut", "flip", "empty",
                                 "types", "shape", "object"]) if damage else st.just("ok"))
    if kind == "extreme":  # finite tokens no encoder ever produced: coded fine, served or refused
        scale = draw(st.sampled_from([1e4, 1e10, 1e19, 1e30, 3e38]))
        tokens = (torch.randn(b, n, d, generator=g, dtype=torch.float64) * scale).clamp(
            -3.4e38, 3.4e38).float()
        try:
            return coders()[served].compress(tokens), None, b
        except ValueError:  # the codec refuses them on board: send what a damaged link gives
            return [bytes(draw(st.binary(max_size=64)))], False, 1
    if kind == "shape":  # payloads coded for other tokens than the encoder's
        tokens = torch.randn(b, n // 2, d, generator=g)
        return coders()[served].compress(tokens), False, b
    tokens = torch.randn(b, n, d, generator=g)
    if kind == "ok":
        return coders()[served].compress(tokens), True, b
    if kind == "foreign":
        other = draw(st.sampled_from([c for c in coders() if c != served]))
        return coders()[other].compress(tokens), False, b
    payloads = coders()[served].compress(tokens)
    if kind == "random":
        return draw(st.lists(st.binary(max_size=200), min_size=1, max_size=3)), False, b
    if kind == "cut":
        return [p[:draw(st.integers(0, len(p) - 1))] for p in payloads], False, b
    if kind == "flip":
        bad = bytearray(payloads[0])
        bad[draw(st.integers(0, len(bad) - 1))] ^= 1 << draw(st.integers(0, 7))
        return [bytes(bad), *payloads[1:]], False, b
    if kind == "empty":
        return [], False, 0
    if kind == "types":
        return [*payloads[:1], draw(st.sampled_from([bytearray(payloads[0]), "text", None, 3]))
                ], False, b
    return draw(st.sampled_from([payloads[0], tuple(payloads), "bits"]) | GARBAGE), False, b


def is_seconds(v: object) -> bool:
    """What the schema takes as a time: an int or float (not a bool), not NaN."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


NOT_STR = GARBAGE.filter(lambda v: not isinstance(v, str))


FIELDS = ("request_id", "tasks", "source", "modality", "capture_time_s", "deadline_s", "tiles",
          "carry", "payload", "bitstream", "token_shape", "missing")


@st.composite
def requests(draw, served: str, token_shape: tuple[int, int], tasks: tuple[str, ...]) -> Drawn:
    """A request with none, one or two of its fields damaged (so that every check is reached);
    ``valid`` is True when none is, False when one is, None when whether it is served is up to
    the runtime (finite tokens far outside what an encoder produces)."""
    if draw(st.integers(0, 19)) == 0:  # not a Request at all
        other = draw(st.sampled_from([None, {"request_id": "x", "tasks": tasks[:1]}, "request",
                                      b"\x00", [1, 2], Response("x", tasks[:1])]))
        return Drawn(other, False, f"non-request {other!r}")
    damaged = set(draw(st.lists(st.sampled_from(FIELDS), max_size=2)))

    def pick(name, valid, bad):
        return draw(bad if name in damaged else valid)

    rid = pick("request_id", st.builds(lambda: f"fuzz-{next(_ids)}"), NOT_STR)
    task_list = pick("tasks", valid_tasks(tasks), damaged_tasks(tasks))
    source = pick("source", st.sampled_from(["sat-P00-S03", ""]), NOT_STR)
    modality = pick("modality", st.sampled_from(["rgb", "ms13"]),
                    st.sampled_from(["sar", "RGB", "pan", ""]) | NOT_STR)
    capture = pick("capture_time_s", st.floats(0, 1e6) | st.integers(0, 10**6), NUMBERS | GARBAGE)
    deadline = pick("deadline_s", st.just(float("inf")) | st.floats(1e6, 1e9), NUMBERS | GARBAGE)
    ok_times = is_seconds(capture) and is_seconds(deadline) and not deadline < capture
    tiles = pick("tiles", st.integers(1, 2**200), st.integers(-2**70, 0) | st.sampled_from(
        [True, False, 2.0, 1e400, "3", None, float("nan")]))
    carry = pick("carry", st.sampled_from(["images", "bitstream"]),
                 st.sampled_from(["both", "neither"]))
    payload = bitstream = token_shape_value = None
    ok_carry, batch = carry in ("images", "bitstream"), 0
    if carry in ("images", "both"):
        payload, ok_payload, batch = draw(images(modality, "payload" in damaged))
        ok_carry = ok_carry and ok_payload
    if carry in ("bitstream", "both"):
        bitstream, ok_bits, batch = draw(bitstreams(served, token_shape, "bitstream" in damaged))
        token_shape_value = pick(
            "token_shape", st.sampled_from([token_shape, list(token_shape)]),
            st.sampled_from([None, (token_shape[0], token_shape[1] + 1), token_shape[::-1], 64,
                             float("nan"), "64x32", torch.zeros(2), (64,), (64, 32, 1),
                             ((64, 32),), {64: 32}])
            | NOT_STR.filter(lambda v: not (isinstance(v, list) and v == [64, 32])))
        ok_carry = ok_carry and "token_shape" not in damaged and ok_bits is not False
        if ok_bits is None and ok_carry:
            ok_carry = None  # valid in form; whether such tokens are served is up to the runtime
    request = Request(rid, task_list, source, capture, deadline, payload, bitstream,
                      token_shape_value, modality, tiles)
    missing = []
    if "missing" in damaged:  # fields a hand-built or half-decoded request lacks
        missing = draw(st.lists(st.sampled_from(["request_id", "tasks", "source"]), min_size=1,
                                max_size=3, unique=True))
        for name in missing:
            delattr(request, name)
    oks = [isinstance(rid, str), "tasks" not in damaged, isinstance(source, str),
           modality in ("rgb", "ms13"), ok_times, "tiles" not in damaged, not missing]
    valid = None if ok_carry is None and all(oks) else bool(all(oks) and ok_carry)
    what = (f"Request(request_id={rid!r}, tasks={task_list!r}, source={source!r}, "
            f"capture_time_s={capture!r}, deadline_s={deadline!r}, modality={modality!r}, "
            f"tiles={tiles!r}, {carry}: payload={describe(payload)}, "
            f"bitstream={describe(bitstream)}, token_shape={token_shape_value!r}) "
            f"without {missing} "
            f"batch={batch} damaged={sorted(damaged)} valid={valid}")
    return Drawn(request, valid, what)


def describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor {tuple(x.shape)}"
    if isinstance(x, list) and all(isinstance(p, (bytes, bytearray)) for p in x):
        return f"[{', '.join(f'{len(p)} bytes' for p in x)}]"
    text = repr(x)
    return text if len(text) < 120 else text[:120] + "..."


def check_response(drawn: Drawn, resp: object) -> None:
    req = drawn.request
    assert isinstance(resp, Response), f"handle returned {type(resp).__name__}"
    assert isinstance(resp.request_id, str)
    if not resp.ok:
        assert isinstance(resp.error, str) and resp.error, "an error response without a message"
        assert not resp.outputs, "an error response with outputs"
        assert drawn.valid is not True, f"a valid request was refused: {resp.error}"
        return
    assert isinstance(req, Request) and drawn.valid is not False, \
        f"a damaged request was served: {drawn.what}"
    asked = list(dict.fromkeys(req.tasks))
    assert sorted(resp.outputs) == sorted(asked), f"outputs for {sorted(resp.outputs)}, asked {asked}"
    batch = len(req.bitstream) if req.payload is None else len(req.payload)
    for task, out in resp.outputs.items():
        assert isinstance(out, torch.Tensor) and out.dim() == 2 and len(out) == batch, \
            f"{task}: output {tuple(out.shape)} for {batch} images"
        assert torch.isfinite(out).all(), f"{task}: served NaN or infinite outputs"


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("codec", [None, "int8"], ids=["no-codec", "int8"])
def test_any_request_gets_a_response(fuzz, codec):
    catalog = catalogs()[codec]
    served = codec or "identity"

    @fuzz.settings(scale=2)
    @given(drawn=requests(served, catalog.token_shape(), catalog.tasks))
    def prop(drawn):
        runtime = InProcessRuntime(catalog)
        with fuzz.case(lambda: drawn.what):
            resp = runtime.handle(drawn.request)
            check_response(drawn, resp)
            again = runtime.handle(drawn.request)  # a retry: the same answer, never a raise
            assert isinstance(again, Response) and again.ok == resp.ok

    prop()
