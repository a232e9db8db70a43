"""Chains of services compose to the unsplit model; the 13-band embedder matches RGB on RGB bands."""

from __future__ import annotations

import torch

from research.serving.runtime import InProcessRuntime
from research.serving.schema import Request
from research.serving.services import MS13_RGB_BANDS
from research.serving.tasks import build_catalog, coarse_labels, recall_at_k
from tests.serving.conftest import MEAN, STD


def test_chain_equals_unsplit_model(vit, catalog, images):
    rt = InProcessRuntime(catalog)
    resp = rt.handle(Request("r0", ("landcover", "coarse", "retrieval"), "sat-P00-S00",
                             payload=images))
    assert resp.ok, resp.error
    with torch.no_grad():
        ref = vit(catalog.normalize(images))
    torch.testing.assert_close(resp.outputs["landcover"], ref, rtol=0, atol=1e-6)
    emb = resp.outputs["retrieval"]
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(images)))
    assert resp.outputs["coarse"].shape == (len(images), 4)
    assert resp.served_by[0] == "embed_rgb@local"


def test_codec_chain_and_costs(vit, images):
    cat = build_catalog(vit, MEAN, STD, codec="identity")
    out = InProcessRuntime(cat).handle(Request("r", ("landcover",), "s", payload=images))
    with torch.no_grad():
        ref = vit(cat.normalize(images))
    torch.testing.assert_close(out.outputs["landcover"], ref, rtol=0, atol=1e-6)
    costs = {n: s.cost for n, s in cat.services.items()}
    assert costs["codec_identity"].out_bytes > 4 * 64 * 32  # header + float32 tokens
    assert costs["encoder_0_2"].flops > 100 * costs["head_landcover"].flops > 0
    assert costs["embed_ms13"].param_bytes > costs["embed_rgb"].param_bytes


def test_multispectral_embedder_reproduces_rgb(catalog, images):
    ms = torch.randint(0, 256, (len(images), 13, 64, 64), dtype=torch.uint8,
                       generator=torch.Generator().manual_seed(1))
    for rgb_band, ms_band in enumerate(MS13_RGB_BANDS):
        ms[:, ms_band] = images[:, rgb_band]
    rt = InProcessRuntime(catalog)
    a = rt.handle(Request("rgb", ("landcover",), "s", payload=images))
    b = rt.handle(Request("ms", ("landcover",), "s", payload=ms, modality="ms13"))
    assert b.ok, b.error
    torch.testing.assert_close(a.outputs["landcover"], b.outputs["landcover"], atol=1e-5,
                               rtol=1e-5)


def test_coarse_mapping_and_recall():
    labels = torch.arange(10)
    assert coarse_labels(labels).tolist() == [0, 1, 1, 3, 3, 0, 0, 3, 2, 2]
    g = torch.nn.functional.normalize(torch.eye(4), dim=1)
    r = recall_at_k(g, torch.tensor([0, 1, 2, 3]), g, torch.tensor([0, 1, 2, 3]), ks=(1,))
    assert r[1] == 1.0


def test_spiking_head_serves_as_a_task(vit, catalog, images):
    from snn import convert_head

    feats = catalog.features(images)
    snn_head = convert_head(torch.nn.Sequential(vit.fc_norm, vit.head), feats, num_steps=64)
    cat = build_catalog(vit, MEAN, STD, spiking_head=snn_head)
    resp = InProcessRuntime(cat).handle(Request("s", ("landcover", "landcover_snn"), "sat",
                                                payload=images))
    assert resp.ok, resp.error
    assert resp.outputs["landcover_snn"].shape == resp.outputs["landcover"].shape
    assert cat.services["head_landcover_snn"].cost.flops > 0
