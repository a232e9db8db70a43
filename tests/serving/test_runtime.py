"""Bad requests get a clear error response; a replica that dies loses and duplicates nothing."""

from __future__ import annotations

import pytest
import torch

from research.serving.runtime import InProcessRuntime
from research.serving.schema import Limits, Request
from research.serving.services import LinkCodec


def _req(images, **kw):
    base = dict(request_id="bad", tasks=("landcover",), source="sat-P00-S00", payload=images)
    base.update(kw)
    return Request(**base)


@pytest.mark.parametrize("kw, needle", [
    (dict(payload="not a tensor"), "torch.Tensor"),
    (dict(tasks=("segmentation",)), "unknown task"),
    (dict(tasks=()), "non-empty"),
    (dict(modality="sar"), "unknown modality"),
    (dict(deadline_s=-1.0, capture_time_s=5.0), "before the capture"),
    (dict(deadline_s="soon"), "deadline_s must be a number"),
    (dict(capture_time_s=float("nan")), "capture_time_s must be a number"),
    (dict(request_id=7), "request_id must be a string"),
    (dict(tiles=0), "tiles must be an integer >= 1"),
])
def test_bad_request_metadata(catalog, images, kw, needle):
    resp = InProcessRuntime(catalog).handle(_req(images, **kw))
    assert not resp.ok and needle in resp.error


def test_bad_payloads(catalog, images):
    rt = InProcessRuntime(catalog, limits=Limits(tasks=catalog.tasks, max_payload_bytes=20_000))
    cases = {
        "dtype": (_req(images.float()), "dtype"),
        "bands": (_req(images[:, :2]), "needs 3 bands"),
        "size": (_req(images[..., :32, :32]), "64x64"),
        "shape": (_req(images[0]), "[B, C, H, W]"),
        "big": (_req(images), "exceeds the limit"),
        "both": (_req(images[:1], bitstream=[b"x"]), "exactly one"),
        "notreq": ({"tasks": ("landcover",)}, "expected a Request"),
    }
    for name, (req, needle) in cases.items():
        resp = rt.handle(req)
        assert not resp.ok and needle in resp.error, (name, resp.error)


def test_truncated_bitstream_is_an_error_response(catalog, images):
    from encoders.base import IdentityLink

    rt = InProcessRuntime(catalog)
    with torch.no_grad():
        tokens = catalog.services["embed_rgb"](catalog.normalize(images[:2]))
    codec = LinkCodec(IdentityLink(), catalog.token_shape())
    payloads = codec.encode(tokens)
    good = rt.handle(_req(None, payload=None, bitstream=payloads, token_shape=(64, 32)))
    assert good.ok, good.error
    cut = rt.handle(_req(None, request_id="cut", payload=None,
                         bitstream=[payloads[0][:-10], payloads[1]], token_shape=(64, 32)))
    assert not cut.ok and "ValueError" in cut.error
    shape = rt.handle(_req(None, request_id="shp", payload=None, bitstream=payloads,
                           token_shape=(16, 32)))
    assert not shape.ok and "token_shape" in shape.error


def test_replica_failure_reroutes_without_loss_or_duplicates(catalog, images):
    """encoder_0_1@sat-A dies during its third call (r4): r4 runs once, on sat-B; the dying
    replica completes nothing more, and no request is run or answered twice. Fails if the dying
    replica executes the call before failing over (the module runs 7 times, not 6)."""
    placement = {"encoder_0_1": ["sat-A", "sat-B"], "head_landcover": ["sat-A", "gs-X"]}
    ref = InProcessRuntime(catalog, placement)
    rt = InProcessRuntime(catalog, placement)
    rt.fail_after("encoder_0_1", "sat-A", 2)  # dies mid-workload
    reqs = [_req(images[i:i + 1], request_id=f"r{i}") for i in range(6)]
    expected = ref.serve(reqs)
    runs = []  # every execution of the encoder_0_1 module, whichever replica or code path
    hook = catalog.services["encoder_0_1"].register_forward_hook(
        lambda _m, inp, _out: runs.append(inp[0].shape[0]))
    try:
        got = rt.serve(reqs[:3]) + rt.serve(reqs[3:]) + rt.serve(reqs[:2])  # retries of answered
    finally:
        hook.remove()
    assert all(r.ok for r in got)
    assert len(runs) == len(reqs)
    assert rt._replica("encoder_0_1", "sat-A").executed == ["r0", "r2"]  # died inside r4
    assert rt._replica("encoder_0_1", "sat-B").executed == ["r1", "r3", "r4", "r5"]
    chain = set(catalog.chain("landcover"))
    executions = rt.executions()
    assert executions.keys() == {r.request_id for r in reqs}
    for rid, by_service in executions.items():
        assert by_service.keys() == chain and all(len(k) == 1 for k in by_service.values()), rid
    assert sorted(rt.answer_count) == sorted(r.request_id for r in reqs)
    assert set(rt.answer_count.values()) == {1}
    for r, e in zip(got[:6], expected, strict=True):
        torch.testing.assert_close(r.outputs["landcover"], e.outputs["landcover"])
    assert not rt._replica("encoder_0_1", "sat-A").alive
    assert "encoder_0_1@sat-B" in got[4].served_by
    rt.kill("encoder_0_1", "sat-B")
    dead = rt.handle(_req(images[:1], request_id="late"))
    assert not dead.ok and "no live replica" in dead.error


def test_wrong_codec_and_nan_bitstreams_are_error_responses(vit, images):
    """A bitstream from another codec is refused by its header; one decoding to NaN tokens is
    refused rather than answered with NaN logits."""
    from encoders.base import IdentityLink
    from research.serving.tasks import build_catalog
    from tests.serving.conftest import MEAN, STD

    int8 = build_catalog(vit, MEAN, STD, cuts=(1,), codec="int8")
    with torch.no_grad():
        tokens = int8.services["embed_rgb"](int8.normalize(images[:2]))
    identity = LinkCodec(IdentityLink(), int8.token_shape())
    resp = InProcessRuntime(int8).handle(_req(None, payload=None, bitstream=identity.encode(tokens),
                                              token_shape=int8.token_shape()))
    assert not resp.ok and "expected 'int8'" in resp.error
    tokens[0, 0, 0] = float("nan")  # a body with a valid header and CRC that decodes to NaN
    from encoders.header import pack_payload

    link = identity.link
    nan_stream = [pack_payload(link.codec_id, link.wire_tag(), *int8.token_shape(), body, flags)
                  for body, flags in link._encode(tokens)]
    plain = build_catalog(vit, MEAN, STD, cuts=(1,))
    resp = InProcessRuntime(plain).handle(_req(None, payload=None, bitstream=nan_stream,
                                               token_shape=plain.token_shape()))
    assert not resp.ok and "NaN" in resp.error
